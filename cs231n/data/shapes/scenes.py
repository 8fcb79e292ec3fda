"""Scenes of the shapes dataset: what each image shows (objects, their facts and positions).

The facts: 7 colors, 5 shapes, 2 sizes; 1 to 3 objects per image, two or three side by side (a row) or one
above the other (a column). :func:`sample_scene` draws one scene from a np.random.Generator.
"""
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

COLORS = MappingProxyType({
    "red": (215, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (235, 205, 35),
    "green": (40, 160, 60),
    "blue": (40, 80, 215),
    "purple": (135, 60, 175),
    "black": (35, 35, 35),
})
SHAPES = ("circle", "square", "triangle", "diamond", "star")
OBJECT_SIZES = ("small", "large")
# Radius of an object as a fraction of the image side (jittered by +-6%).
_RADIUS = MappingProxyType({"small": 0.095, "large": 0.14})
# Probabilities of 1, 2 and 3 objects.
_COUNT_PROBS = (0.2, 0.5, 0.3)


@dataclass(frozen=True)
class ShapeObject:
    """One drawn object: its facts and where it is.

    - shape, color, size: names from SHAPES, COLORS and OBJECT_SIZES.
    - x, y: center as fractions of the image width and height (y grows downwards).
    - radius: as a fraction of the image side.
    - rgb: the jittered fill color actually drawn.
    """
    shape: str
    color: str
    size: str
    x: float
    y: float
    radius: float
    rgb: tuple


@dataclass(frozen=True)
class Scene:
    """What one image shows.

    - layout: ``'single'``, ``'row'`` (objects left to right) or ``'column'`` (objects top to bottom).
    - objects: tuple of ShapeObject, in reading order (left to right, or top to bottom).
    - background: RGB of the background.
    """
    layout: str
    objects: tuple
    background: tuple


def sample_scene(rng):
    """Draw a random scene: 1 to 3 objects, their facts, positions and the background.

    Inputs:
    - rng: np.random.Generator.

    Returns a Scene.
    """
    count = int(rng.choice(3, p=_COUNT_PROBS)) + 1
    if count == 1:
        layout = "single"
        along = [rng.uniform(0.3, 0.7)]
        across = rng.uniform(0.3, 0.7)
    else:
        layout = "row" if rng.random() < 0.5 else "column"
        if count == 2:
            along = [rng.uniform(0.2, 0.32), rng.uniform(0.68, 0.8)]
            jitter = 0.04
        else:
            along = [c + rng.uniform(-0.01, 0.01) for c in (0.17, 0.5, 0.83)]
            jitter = 0.03
        across = rng.uniform(0.3, 0.7)
    color_names = list(COLORS)
    objects = []
    for a in along:
        c = across + (rng.uniform(-jitter, jitter) if count > 1 else 0.0)
        x, y = (a, c) if layout in ("single", "row") else (c, a)
        size = OBJECT_SIZES[rng.integers(len(OBJECT_SIZES))]
        color = color_names[rng.integers(len(color_names))]
        rgb = tuple(int(np.clip(v + rng.integers(-15, 16), 0, 255)) for v in COLORS[color])
        objects.append(ShapeObject(
            shape=SHAPES[rng.integers(len(SHAPES))], color=color, size=size,
            x=float(x), y=float(y), radius=float(_RADIUS[size] * rng.uniform(0.94, 1.06)), rgb=rgb))
    gray = int(rng.integers(205, 251))
    background = tuple(int(np.clip(gray + rng.integers(-6, 7), 0, 255)) for _ in range(3))
    return Scene(layout=layout, objects=tuple(objects), background=background)
