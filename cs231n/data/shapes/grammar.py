"""The caption grammar of the shapes dataset: how a scene is described in words.

:func:`describe_scene` writes captions of a scene from the tables below (templates per layout and number
of objects, relation phrases, synonyms of sizes, colors and shapes, each with its probability).
"""
from types import MappingProxyType

from cs231n.coco_utils import CAPTION_LENGTH
from cs231n.data.shapes.scenes import COLORS, SHAPES

MAX_WORDS = CAPTION_LENGTH - 2

# Words for each fact, with their probabilities; the first is the most common phrasing.
_SIZE_WORDS = MappingProxyType({
    "large": (("large", 0.6), ("big", 0.4)),
    "small": (("small", 0.6), ("little", 0.25), ("tiny", 0.15)),
})
_COLOR_WORDS = MappingProxyType({
    "purple": (("purple", 0.75), ("violet", 0.25)),
})
_SHAPE_WORDS = MappingProxyType({
    "circle": (("circle", 0.75), ("disk", 0.25)),
    "square": (("square", 0.8), ("box", 0.2)),
    "diamond": (("diamond", 0.8), ("rhombus", 0.2)),
})
_SIZE_DROP_PROB = 0.1  # a caption leaves out every size word
_TYPO_PROB = 0.02  # a caption misspells one color or shape word


def _pick(rng, choices):
    """One word (or phrase) from ``((word, probability), ...)`` (probabilities summing to 1)."""
    r = rng.random()
    for word, p in choices:
        r -= p
        if r < 0:
            return word
    return choices[-1][0]


def _noun_phrase(obj, rng, with_size):
    """``a large red circle``: article, optional size word, color word, shape word."""
    words = []
    if with_size:
        words.append(_pick(rng, _SIZE_WORDS[obj.size]))
    words.append(_pick(rng, _COLOR_WORDS.get(obj.color, ((obj.color, 1.0),))))
    words.append(_pick(rng, _SHAPE_WORDS.get(obj.shape, ((obj.shape, 1.0),))))
    article = "an" if words[0][0] in "aeiou" else "a"
    return " ".join([article] + words)


# Caption templates per (layout, number of objects): (template, probability). {0}, {1}, {2} are the
# objects in reading order; {rel} is a relation phrase drawn from the named list in _RELATIONS.
_TEMPLATES = MappingProxyType({
    ("single", 1): (
        ("{0}", 0.45), ("there is {0}", 0.25), ("a picture of {0}", 0.15), ("{0} on a plain background", 0.15)),
    ("row", 2): (
        ("{0} {left} {1}", 0.55), ("there is {0} {left} {1}", 0.1), ("{1} {right} {0}", 0.25),
        ("{0} and {1} side by side", 0.1)),
    ("column", 2): (
        ("{0} {above} {1}", 0.55), ("there is {0} {above} {1}", 0.1), ("{1} {below} {0}", 0.25),
        ("{0} and {1} one above the other", 0.1)),
    ("row", 3): (
        ("{0} left of {1} and {2}", 0.55), ("{2} right of {1} and {0}", 0.2), ("{0} then {1} then {2}", 0.15),
        ("{0} next to {1} and {2}", 0.1)),
    ("column", 3): (
        ("{0} {above_short} {1} and {2}", 0.55), ("{2} {below_short} {1} and {0}", 0.2),
        ("{0} over {1} over {2}", 0.15), ("{0} above {1} above {2}", 0.1)),
})
_RELATIONS = MappingProxyType({
    "left": (("to the left of", 0.6), ("left of", 0.25), ("on the left side of", 0.15)),
    "right": (("to the right of", 0.6), ("right of", 0.25), ("on the right side of", 0.15)),
    "above": (("above", 0.6), ("over", 0.25), ("on top of", 0.15)),
    "below": (("below", 0.6), ("under", 0.25), ("beneath", 0.15)),
    "above_short": (("above", 0.7), ("over", 0.3)),
    "below_short": (("below", 0.6), ("under", 0.4)),
})


def _typo(word, rng):
    """Misspell a word: swap two neighbouring letters, drop one, double one, or replace one."""
    i = int(rng.integers(1, len(word) - 1))
    kind = int(rng.integers(4))
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:
        return word[:i] + word[i + 1:]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    return word[:i] + "abcdefghijklmnopqrstuvwxyz"[int(rng.integers(26))] + word[i + 1:]


def _one_caption(scene, rng):
    """One caption of a scene from the grammar (see _TEMPLATES and _RELATIONS)."""
    key = (scene.layout, len(scene.objects))
    template = _pick(rng, _TEMPLATES[key])
    with_size = rng.random() >= _SIZE_DROP_PROB
    phrases = [_noun_phrase(obj, rng, with_size) for obj in scene.objects]
    relations = {name: _pick(rng, choices) for name, choices in _RELATIONS.items()}
    words = template.format(*phrases, **relations).split()
    if rng.random() < _TYPO_PROB:
        names = set(COLORS) | set(SHAPES) | {w for c in _SHAPE_WORDS.values() for w, _ in c}
        spots = [i for i, w in enumerate(words) if w in names and len(w) >= 4]
        if spots:
            i = spots[int(rng.integers(len(spots)))]
            words[i] = _typo(words[i], rng)
    assert len(words) <= MAX_WORDS, f"caption of {len(words)} words > {MAX_WORDS}: {' '.join(words)}"
    return " ".join(words)


def describe_scene(scene, rng, num_captions=5):
    """Write `num_captions` different captions of a scene (duplicates only if the grammar runs out).

    Inputs:
    - scene: a Scene.
    - rng: np.random.Generator.
    - num_captions: how many captions.

    Returns a list of str, lower case words separated by single spaces, at most 15 words each.
    """
    captions = []
    for _ in range(50 * num_captions):
        caption = _one_caption(scene, rng)
        if caption not in captions:
            captions.append(caption)
            if len(captions) == num_captions:
                return captions
    while len(captions) < num_captions:
        captions.append(_one_caption(scene, rng))
    return captions
