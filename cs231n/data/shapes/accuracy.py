"""Scene accuracy: how often generated captions of shapes images are right, read with the grammar.

BLEU and CIDEr count n-grams shared with the reference captions; on this dataset a caption that names
the wrong shape or swaps two objects still shares most of its n-grams with the references. The generator
knows what each image shows (``shapes_scenes.json``), so a caption can be checked directly: it is read
back with :func:`cs231n.data.shapes.grammar.parse_caption` and compared with the scene.

How a caption is compared with its scene (N objects in the scene):

- The caption's objects are paired with the scene's by the pairing that agrees on the most colors,
  shapes and sizes (ties: reading order), so a color error is not also counted as an order error.
- count: the caption names N objects. arrangement: the count is right, the layout (row / column /
  single) is right, and the best pairing is the reading order (objects named in the right places).
- color, shape: per scene object, its paired caption object has its color (shape).
- size: per scene object, its paired caption object has its size; an object named without a size word
  counts as right (the grammar's own captions leave sizes out 10% of the time).
- entirely right: the caption reads, and count, arrangement and every color, shape and size are right.
- misbound (attributes bound to the wrong object): some object is given a color, shape or size that
  is not its own but another object's in the scene (e.g. "a purple diamond above an orange square"
  for a purple square above an orange diamond: each shape is the other object's). This is the error a
  decoder makes when it reads every object's facts but not which belongs to which.
- A caption that does not read (not a sentence of the grammar) is wrong in every respect (and not
  misbound).

:func:`scene_accuracy` gives the fractions over a set of captions; :func:`judge_caption` gives the
verdict on one caption, word by word (used to mark wrong words in figures).
"""
import itertools
import json
from pathlib import Path

from cs231n.data.shapes.dataset import SCENES_FILE
from cs231n.data.shapes.grammar import parse_caption
from cs231n.data.shapes.scenes import Scene, ShapeObject

# Keys of scene_accuracy's result, in the order they are printed.
SCENE_METRICS = ("scene_right", "scene_count", "scene_color", "scene_shape", "scene_size",
                 "scene_arrangement", "scene_unparsed", "scene_misbound")


def load_scenes(base_dir, split):
    """The scenes of a split of a shapes dataset, or None when the directory is not a shapes dataset.

    Inputs:
    - base_dir: dataset directory.
    - split: ``'train'`` or ``'val'``.

    Returns a list of Scene (index i = image i of the split), or None.
    """
    path = Path(base_dir) / SCENES_FILE
    if not path.is_file():
        return None
    records = json.loads(path.read_text(encoding="utf-8"))[split]
    return [scene_from_record(r) for r in records]


def scene_from_record(record):
    """A Scene from its dict in ``shapes_scenes.json`` (the extra ``captions`` key is ignored)."""
    objects = tuple(ShapeObject(**{**o, "rgb": tuple(o["rgb"])}) for o in record["objects"])
    return Scene(layout=record["layout"], objects=objects, background=tuple(record["background"]))


def _best_pairing(said, truth):
    """Pairs (caption object i, scene object j) agreeing most on color, shape and size; ties: in order."""
    n = max(len(said), len(truth))
    best, best_score = None, None
    for perm in itertools.permutations(range(n)):
        pairs = [(i, j) for i, j in enumerate(perm) if i < len(said) and j < len(truth)]
        agree = sum((said[i][1] == truth[j].color) + (said[i][2] == truth[j].shape)
                    + (said[i][0] in (None, truth[j].size)) for i, j in pairs)
        score = (agree, sum(i == j for i, j in pairs))
        if best_score is None or score > best_score:
            best, best_score = pairs, score
    return best


def judge_caption(caption, scene):
    """Check one caption against the scene it describes (see the module docstring for the rules).

    Inputs:
    - caption: str (``<START>``/``<END>`` already stripped).
    - scene: a Scene.

    Returns a dict with:
    - parsed: bool, whether the caption reads.
    - count, arrangement, right: bool.
    - misbound: bool, some object is given another scene object's color, shape or size (not its own).
    - color, shape, size: lists of N bools, one per scene object.
    - wrong_words: list of bools, one per word of the caption: the words that say something false (all
      of them when the caption does not read; the template and relation words when the arrangement is
      wrong; the words of objects the scene does not have).
    """
    words = caption.split()
    truth = scene.objects
    parsed = parse_caption(caption)
    if parsed is None:
        n = len(truth)
        return {"parsed": False, "count": False, "arrangement": False, "right": False, "misbound": False,
                "color": [False] * n, "shape": [False] * n, "size": [False] * n,
                "wrong_words": [True] * len(words)}
    said = parsed.objects
    pairs = _best_pairing(said, truth)
    partner = dict(pairs)  # caption object -> scene object
    color, shape, size = ([False] * len(truth) for _ in range(3))
    misbound = False
    for i, j in pairs:
        color[j] = said[i][1] == truth[j].color
        shape[j] = said[i][2] == truth[j].shape
        size[j] = said[i][0] in (None, truth[j].size)
        others = [o for k, o in enumerate(truth) if k != j]
        for value, ok, attr in ((said[i][1], color[j], "color"), (said[i][2], shape[j], "shape"),
                                (said[i][0], size[j], "size")):
            misbound |= not ok and any(getattr(o, attr) == value for o in others)
    count = len(said) == len(truth)
    arrangement = count and parsed.layout == scene.layout and all(i == j for i, j in pairs)
    wrong = []
    for part, k in parsed.roles:
        if part == "arrangement":
            wrong.append(not arrangement)
        elif k not in partner:
            wrong.append(True)  # an object the scene does not have
        elif part == "article":
            wrong.append(False)
        else:
            j = partner[k]
            truth_value = {"size": truth[j].size, "color": truth[j].color, "shape": truth[j].shape}[part]
            value = said[k][("size", "color", "shape").index(part)]
            wrong.append(value != truth_value)
    right = arrangement and all(color) and all(shape) and all(size)
    return {"parsed": True, "count": count, "arrangement": arrangement, "right": right, "misbound": misbound,
            "color": color, "shape": shape, "size": size, "wrong_words": wrong}


def scene_accuracy(captions, scenes):
    """Fractions of right captions and of right attributes over a set of captions of shapes images.

    Inputs:
    - captions: list of N str, or a dict {image index: str}.
    - scenes: list of Scene; with a list of captions scenes[n] is what caption n describes, with a dict
      scenes[image index].

    Returns a dict of floats in [0, 1] with the keys of SCENE_METRICS: ``scene_right`` (entirely right),
    ``scene_count`` and ``scene_arrangement`` (per caption), ``scene_color``, ``scene_shape`` and
    ``scene_size`` (per scene object), ``scene_unparsed`` (captions that do not read), ``scene_misbound``
    (captions that give an object another object's color, shape or size).
    """
    if isinstance(captions, dict):
        pairs = [(c, scenes[i]) for i, c in captions.items()]
    else:
        captions = list(captions)
        if len(captions) != len(scenes):
            raise ValueError(f"scene_accuracy: got {len(captions)} captions and {len(scenes)} scenes; "
                             f"they must match")
        pairs = list(zip(captions, scenes))
    if not pairs:
        raise ValueError("scene_accuracy: captions is empty; need at least one caption")
    totals = dict.fromkeys(SCENE_METRICS, 0)
    num_objects = 0
    for caption, scene in pairs:
        verdict = judge_caption(caption, scene)
        totals["scene_right"] += verdict["right"]
        totals["scene_count"] += verdict["count"]
        totals["scene_arrangement"] += verdict["arrangement"]
        totals["scene_unparsed"] += not verdict["parsed"]
        totals["scene_misbound"] += verdict["misbound"]
        for part in ("color", "shape", "size"):
            totals[f"scene_{part}"] += sum(verdict[part])
        num_objects += len(scene.objects)
    per_object = ("scene_color", "scene_shape", "scene_size")
    return {k: totals[k] / (num_objects if k in per_object else len(pairs)) for k in SCENE_METRICS}


def format_scene_accuracy(scores):
    """One line for the terminal: ``scene: right 93.0% | count 99.5% color ... unparsed 0.0%``."""
    parts = " ".join(f"{k[len('scene_'):]} {scores[k]:.1%}" for k in SCENE_METRICS[1:])
    return f"scene: right {scores['scene_right']:.1%} | {parts}"


def judge_dataset_captions(base_dir, split, captions):
    """Scene accuracy of generated captions of a dataset's images, when the dataset is a shapes dataset.

    Inputs:
    - base_dir: dataset directory.
    - split: ``'train'`` or ``'val'``.
    - captions: dict {image index: str}; ``<START>``, ``<END>`` and ``<NULL>`` are ignored.

    Returns (scores, verdicts): the dict of :func:`scene_accuracy` and {image index: the dict of
    :func:`judge_caption`}; or (None, None) when base_dir holds no ``shapes_scenes.json`` (e.g. COCO).
    """
    from cs231n.coco_utils import strip_framing

    scenes = load_scenes(base_dir, split)
    if scenes is None:
        return None, None
    plain = {i: strip_framing(c) for i, c in captions.items()}
    verdicts = {i: judge_caption(c, scenes[i]) for i, c in plain.items()}
    return scene_accuracy(plain, scenes), verdicts
