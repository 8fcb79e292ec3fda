"""The "shapes" dataset: synthetic captioned images written in the cs231n COCO captioning format.

The real COCO release needs the internet; this package makes a small stand-in that a captioning model
can learn in minutes on a laptop and that :func:`cs231n.coco_utils.load_coco_data` loads unchanged.

What it is, plainly:

- Images: 96x96 RGB PNGs (64 to 128 px with `image_size`) drawn with Pillow. Each shows 1 to 3 flat
  objects on a light, slightly tinted background: 7 colors (red, orange, yellow, green, blue, purple,
  black), 5 shapes (circle, square, triangle, diamond, star), 2 sizes (small, large). Two objects sit
  side by side (a row) or one above the other (a column); three objects form a row or a column.
  Positions, sizes, colors and the background are jittered a little.
- Captions: 5 different captions per image from a small grammar, at most 15 words each, naming every
  object's size, color and shape and how they are placed, e.g. ``a large red circle to the left of a
  small blue square``. Synonyms (big/large, disk/circle, over/above, ...), optional words and reversed
  orderings (``... to the right of ...``) make them vary; each part has one most common phrasing
  (used in 45% to 80% of captions), so a model that says it matches several of an image's captions.
  About 2% of captions carry a typo; the vocabulary's minimum count turns the rare ones into
  ``<UNK>``, as rare words are in COCO.
- Features: NOT a trained network. A fixed featurizer written in numpy (:func:`featurize_images`,
  module ``featurizer``): the image is resized to 96x96; the pixels that differ from the background
  (the median border color) form a mask; the objects are found as the runs of occupied columns (side
  by side) or rows (one above the other), at most 3, in reading order. Four views of 16x16 cells x 4
  channels (mask, and mask times R, G, B) follow: the whole image, then a 32x32-pixel window around
  each object (zeros for absent objects), so each object's shape, color and size sit in its own
  slot. That gives 4 x 1024 = 4096 values, stored as ``*_vgg16_fc7.h5`` because that is the format's
  file name. A PCA fitted on the training features (mean, then the top 512 principal axes, then one
  global scale) gives the 512 values of ``*_vgg16_fc7_pca.h5``. The PCA is saved in
  ``shapes_featurizer.npz`` so that :func:`featurize_for_dataset` can featurize new images later,
  with the statistics that tell how far a new image is from the training images
  (:func:`feature_distance`, calibrated on the val images).
- Region features (SPEC section 10, for the models that attend): ``*_regions.h5``, the same four views
  as 4 regions of 64 values (56 values of one PCA fitted on the training views, which region it is,
  its box) and their boxes, for drawing; :func:`featurize_regions_for_dataset` makes them for new
  images. The featurizer module's docstring says why these regions (a linear probe reads every fact
  of an object from its region alone).
- URLs: ``file://`` URLs of the rendered PNGs (``images/train2014/000000.png``, ...).
- Also written: ``shapes_meta.json`` (every generation parameter; written last, so it marks a
  complete dataset), ``shapes_scenes.json`` (each image's objects, positions and captions) and a
  ``README.md``.

Everything is determined by `seed` (on one machine; BLAS may round differently elsewhere). The
default size (6000 training and 1000 validation images, 5 captions each) takes 20 to 45 seconds on
two cores; ``size='tiny'`` (60 and 20 images) takes about a second, for tests.

Entry points: :func:`ensure_shapes_dataset` (generate once into a cache directory and reuse it),
:func:`make_shapes_dataset` (generate into a given directory), :func:`featurize_images`,
:func:`featurize_for_dataset`, :func:`featurize_regions_for_dataset`; and the pieces: :func:`sample_scene`, :func:`render_scene`,
:func:`describe_scene`.

The package holds one job per module; every name above is importable from the package itself:

- ``scenes``: the facts (colors, shapes, sizes), Scene and ShapeObject, :func:`sample_scene`.
- ``rendering``: :func:`render_scene`.
- ``grammar``: the caption grammar, :func:`describe_scene`, and its reader :func:`parse_caption`.
- ``accuracy``: scene accuracy of generated captions, :func:`scene_accuracy`, :func:`judge_caption`.
- ``featurizer``: :func:`featurize_images`, :func:`featurize_for_dataset`.
- ``pca``: :func:`fit_pca`, :func:`apply_pca`.
- ``dataset``: the vocabulary, :func:`make_shapes_dataset`, :func:`ensure_shapes_dataset`.
"""

from cs231n.data.shapes.accuracy import (SCENE_METRICS, format_scene_accuracy, judge_caption, load_scenes,
                                         scene_accuracy)
from cs231n.data.shapes.dataset import (FORMAT_NAME, FORMAT_VERSION, META_FILE, README_FILE, SCENES_FILE, SIZES,
                                        build_vocab, default_shapes_dir, encode_captions, ensure_shapes_dataset,
                                        make_shapes_dataset)
from cs231n.data.shapes.featurizer import (FEATURE_INPUT_SIZE, FEATURIZER_FILE, FEATURIZER_NAME, MAX_OBJECTS,
                                           NUM_REGIONS, REGION_DIM, feature_distance, featurize_for_dataset,
                                           featurize_images, featurize_regions_for_dataset, image_doubts,
                                           region_features)
from cs231n.data.shapes.grammar import (_COLOR_WORDS, _RELATIONS, _SHAPE_WORDS, _SIZE_WORDS, _TEMPLATES, MAX_WORDS,
                                        ParsedCaption, describe_scene, parse_caption)
from cs231n.data.shapes.pca import apply_pca, fit_pca
from cs231n.data.shapes.rendering import render_scene
from cs231n.data.shapes.scenes import COLORS, OBJECT_SIZES, SHAPES, Scene, ShapeObject, sample_scene

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "META_FILE", "README_FILE", "SCENES_FILE", "SIZES", "build_vocab",
    "default_shapes_dir", "encode_captions", "ensure_shapes_dataset", "make_shapes_dataset",
    "FEATURE_INPUT_SIZE", "FEATURIZER_FILE", "FEATURIZER_NAME", "MAX_OBJECTS", "feature_distance",
    "featurize_for_dataset", "featurize_images", "image_doubts", "NUM_REGIONS", "REGION_DIM", "featurize_regions_for_dataset",
    "region_features", "MAX_WORDS", "describe_scene", "ParsedCaption", "parse_caption", "SCENE_METRICS",
    "format_scene_accuracy", "judge_caption", "load_scenes", "scene_accuracy", "apply_pca", "fit_pca", "render_scene", "COLORS",
    "OBJECT_SIZES", "SHAPES", "Scene", "ShapeObject", "sample_scene",
]
