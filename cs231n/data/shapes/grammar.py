"""The caption grammar of the shapes dataset: how a scene is described in words, and reading it back.

:func:`describe_scene` writes captions of a scene from the tables below (templates per layout and number
of objects, relation phrases, synonyms of sizes, colors and shapes, each with its probability).
:func:`parse_caption` reads a caption with the same tables (every template, synonym and ordering, size
words optional) back into the layout and the objects in reading order; it is how generated captions are
checked against the scenes (see ``cs231n.data.shapes.accuracy``).
"""
import re
from dataclasses import dataclass
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


# ----------------------------------------------------------------------------------------------------
# Reading captions back


@dataclass(frozen=True)
class ParsedCaption:
    """What a caption says, as read by :func:`parse_caption`.

    - layout: ``'single'``, ``'row'`` or ``'column'``.
    - objects: tuple of (size or None when no size word is given, color, shape) in reading order (left to
      right, or top to bottom), whatever order the caption names them in.
    - roles: one entry per word of the caption: ``(part, k)`` where part is ``'size'``, ``'color'``,
      ``'shape'`` or ``'article'`` of object k (reading order), or ``('arrangement', None)`` for the words
      of the template and the relation phrase.
    """
    layout: str
    objects: tuple
    roles: tuple


def _alternatives(words):
    """A regex group matching any of the given words or phrases (longest first)."""
    return "(?:" + "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)) + ")"


def _word_tables():
    """Word -> fact maps for sizes, colors and shapes, from the generator's tables."""
    sizes = {w: size for size, choices in _SIZE_WORDS.items() for w, _ in choices}
    colors = {color: color for color in COLORS}
    colors.update({w: color for color, choices in _COLOR_WORDS.items() for w, _ in choices})
    shapes = {shape: shape for shape in SHAPES}
    shapes.update({w: shape for shape, choices in _SHAPE_WORDS.items() for w, _ in choices})
    return sizes, colors, shapes


_WORD_TO_SIZE, _WORD_TO_COLOR, _WORD_TO_SHAPE = _word_tables()


def _template_pattern(template):
    """Compile one template into a regex with named groups ``size<k>``, ``color<k>``, ``shape<k>``.

    The template's noun phrases may be written in any order (``{1} ... {0}``); k is the reading position.
    """
    pattern = re.escape(template)
    for k in range(3):
        noun = (rf"(?P<article{k}>a|an) (?:(?P<size{k}>{_alternatives(_WORD_TO_SIZE)}) )?"
                rf"(?P<color{k}>{_alternatives(_WORD_TO_COLOR)}) (?P<shape{k}>{_alternatives(_WORD_TO_SHAPE)})")
        pattern = pattern.replace(re.escape("{%d}" % k), noun)
    for name, choices in _RELATIONS.items():
        pattern = pattern.replace(re.escape("{%s}" % name), _alternatives(w for w, _ in choices))
    return re.compile(pattern + "$")


# (layout, number of objects, compiled template), in the order of _TEMPLATES.
_PATTERNS = tuple((layout, count, _template_pattern(template))
                  for (layout, count), choices in _TEMPLATES.items() for template, _ in choices)


def parse_caption(caption):
    """Read a caption of the grammar back into its layout and objects.

    Every template, relation phrase and synonym of the grammar is understood, in either ordering; size
    words are optional for each object; ``a`` and ``an`` are both accepted. Anything else (an unknown or
    misspelled word, ``<UNK>``, a missing word) makes the caption unreadable.

    Inputs:
    - caption: str, words separated by spaces (``<START>``/``<END>`` already stripped).

    Returns a ParsedCaption, or None when the caption is not a sentence of the grammar.
    """
    if not isinstance(caption, str):
        raise TypeError(f"parse_caption: caption must be a str, got {type(caption).__name__}")
    text = " ".join(caption.split())
    for layout, count, pattern in _PATTERNS:
        match = pattern.match(text)
        if match is None:
            continue
        roles = [("arrangement", None)] * len(text.split())
        objects = []
        for k in range(count):
            size = match.group(f"size{k}")
            objects.append((_WORD_TO_SIZE[size] if size else None, _WORD_TO_COLOR[match.group(f"color{k}")],
                            _WORD_TO_SHAPE[match.group(f"shape{k}")]))
            for part in ("article", "size", "color", "shape"):
                if match.group(f"{part}{k}") is not None:
                    roles[text.count(" ", 0, match.start(f"{part}{k}"))] = (part, k)
        return ParsedCaption(layout=layout, objects=tuple(objects), roles=tuple(roles))
    return None
