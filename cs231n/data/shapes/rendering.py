"""Drawing a scene as an RGB image with Pillow (supersampled, so edges are smooth)."""
import numpy as np
from PIL import Image, ImageDraw

from cs231n.data.shapes.scenes import SHAPES


def _outline(shape, cx, cy, r):
    """Polygon vertices of a shape centered at (cx, cy) with radius r, in pixels."""
    if shape == "square":
        s = 0.85 * r
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + 0.95 * r, cy + 0.8 * r), (cx - 0.95 * r, cy + 0.8 * r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.8 * r, cy), (cx, cy + r), (cx - 0.8 * r, cy)]
    if shape == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        return list(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles)))
    raise ValueError(f"_outline: unknown shape {shape!r}; expected one of {SHAPES}")


def render_scene(scene, image_size=96, supersample=2):
    """Draw a scene with Pillow.

    Shapes are drawn at `supersample` times the size and box-filtered down, which smooths the edges.

    Inputs:
    - scene: a Scene.
    - image_size: side S of the square image in pixels.
    - supersample: integer drawing scale >= 1.

    Returns an array of shape (S, S, 3), uint8.
    """
    side = image_size * supersample
    image = Image.new("RGB", (side, side), scene.background)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        cx, cy, r = obj.x * side, obj.y * side, obj.radius * side
        if obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=obj.rgb)
        else:
            draw.polygon(_outline(obj.shape, cx, cy, r), fill=obj.rgb)
    if supersample > 1:
        image = image.resize((image_size, image_size), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.uint8)
