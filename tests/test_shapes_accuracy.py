"""Tests of the shapes caption reader (grammar.parse_caption) and the scene-accuracy metric.

The round trips write captions of known scenes and read them back: every template of the grammar with
every relation phrase and every synonym, and the generator's own captions of many random scenes. The
metric is checked on hand-made right and wrong captions whose verdicts are written out here.
"""
import itertools

import numpy as np
import pytest

from cs231n.data import shapes
from cs231n.data.shapes import grammar


def _obj(shape, color, size, x=0.5, y=0.5):
    return shapes.ShapeObject(shape=shape, color=color, size=size, x=x, y=y, radius=0.1, rgb=(0, 0, 0))


def _scene(layout, *facts):
    """A scene from (shape, color, size) triples in reading order."""
    return shapes.Scene(layout=layout, objects=tuple(_obj(*f) for f in facts), background=(230, 230, 230))


def _synonyms(table, fact):
    return [w for w, _ in table[fact]] if fact in table else [fact]


def _phrase(obj, size_word, color_word, shape_word):
    words = ([size_word] if size_word else []) + [color_word, shape_word]
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def test_every_template_relation_and_synonym_reads_back():
    rng = np.random.default_rng(0)
    checked = 0
    for (layout, count), templates in grammar._TEMPLATES.items():
        for template, _ in templates:
            names = [n for n in grammar._RELATIONS if "{%s}" % n in template]
            phrase_choices = [[w for w, _ in grammar._RELATIONS[n]] for n in names] or [[None]]
            for relation_words in itertools.product(*phrase_choices):
                for trial in range(6):
                    facts = [(shapes.SHAPES[int(rng.integers(5))], list(shapes.COLORS)[int(rng.integers(7))],
                              shapes.OBJECT_SIZES[int(rng.integers(2))]) for _ in range(count)]
                    scene = _scene(layout, *facts)
                    phrases = []
                    for k, (shape, color, size) in enumerate(facts):
                        sizes = _synonyms(grammar._SIZE_WORDS, size) + [None]  # a size word is optional
                        colors = _synonyms(grammar._COLOR_WORDS, color)
                        shape_words = _synonyms(grammar._SHAPE_WORDS, shape)
                        pick = trial + k
                        phrases.append(_phrase(None, sizes[pick % len(sizes)], colors[pick % len(colors)],
                                               shape_words[pick % len(shape_words)]))
                    caption = template.format(*phrases, **dict(zip(names, relation_words)))
                    parsed = shapes.parse_caption(caption)
                    assert parsed is not None, caption
                    assert parsed.layout == layout, caption
                    sizes_said = [s for s, _, _ in parsed.objects]
                    assert [(sh, c) for _, c, sh in parsed.objects] == [(sh, c) for sh, c, _ in facts], caption
                    assert all(s in (None, f[2]) for s, f in zip(sizes_said, facts)), caption
                    assert shapes.judge_caption(caption, scene)["right"], caption
                    checked += 1
    assert checked > 200


def test_every_synonym_is_understood():
    for table, facts in ((grammar._SIZE_WORDS, shapes.OBJECT_SIZES), (grammar._COLOR_WORDS, shapes.COLORS),
                         (grammar._SHAPE_WORDS, shapes.SHAPES)):
        for fact in facts:
            for word in _synonyms(table, fact):
                if table is grammar._SIZE_WORDS:
                    caption, expected = f"a {word} red star", (fact, "red", "star")
                elif table is grammar._COLOR_WORDS:
                    caption, expected = f"a {word} star", (None, fact, "star")
                else:
                    caption, expected = f"a red {word}", (None, "red", fact)
                assert shapes.parse_caption(caption).objects == (expected,), caption


def test_generated_captions_read_back_as_their_scene():
    rng = np.random.default_rng(1)
    read = typos = 0
    for _ in range(400):
        scene = shapes.sample_scene(rng)
        for caption in shapes.describe_scene(scene, rng, 5):
            verdict = shapes.judge_caption(caption, scene)
            known = set(grammar._WORD_TO_COLOR) | set(grammar._WORD_TO_SHAPE)
            if verdict["parsed"]:
                assert verdict["right"], caption
                read += 1
            else:  # only the generator's deliberate typos do not read
                words = set(caption.split())
                assert not words & known or len(words - known - set(grammar._WORD_TO_SIZE)) > 0
                typos += 1
    assert read >= 1900 and typos <= 80


def test_reading_order_is_the_same_for_both_orderings():
    left = shapes.parse_caption("a large red circle to the left of a small blue square")
    right = shapes.parse_caption("a small blue square to the right of a large red circle")
    assert left.objects == right.objects == (("large", "red", "circle"), ("small", "blue", "square"))
    assert left.layout == right.layout == "row"
    # roles name the reading position: the first word of the second caption belongs to object 1
    assert right.roles[:4] == (("article", 1), ("size", 1), ("color", 1), ("shape", 1))
    col = shapes.parse_caption("a green star under a black box and a violet disk")
    assert col.layout == "column"
    assert col.objects == ((None, "purple", "circle"), (None, "black", "square"), (None, "green", "star"))


@pytest.mark.parametrize("caption", [
    "", "a red", "a red circle <UNK> a blue square", "a reed circle", "a red circle to the left of",
    "a red circle to the left of a blue square and", "red circle", "a red circle a blue square",
    "<START> a red circle <END>"])
def test_what_is_not_a_sentence_of_the_grammar_does_not_read(caption):
    assert shapes.parse_caption(caption) is None


def test_parse_caption_rejects_non_strings():
    with pytest.raises(TypeError, match="caption must be a str"):
        shapes.parse_caption(["a", "red", "circle"])


ROW = _scene("row", ("circle", "red", "large"), ("square", "blue", "small"))


@pytest.mark.parametrize("caption, count, arrangement, color, shape, size, right, wrong", [
    ("a large red circle to the left of a small blue square", True, True, [1, 1], [1, 1], [1, 1], True, ""),
    ("a small blue square to the right of a large red circle", True, True, [1, 1], [1, 1], [1, 1], True, ""),
    ("a red circle left of a blue square", True, True, [1, 1], [1, 1], [1, 1], True, ""),
    ("a large red circle to the right of a small blue square", True, False, [1, 1], [1, 1], [1, 1], False,
     "to the right of"),
    ("a large green circle to the left of a small blue square", True, True, [0, 1], [1, 1], [1, 1], False,
     "green"),
    ("a large red triangle to the left of a large blue square", True, True, [1, 1], [0, 1], [1, 0], False,
     "triangle large"),
    ("a large red circle above a small blue square", True, False, [1, 1], [1, 1], [1, 1], False, "above"),
    ("there is a large red circle", False, False, [1, 0], [1, 0], [1, 0], False, "there is"),
    ("a red circle then a blue square then a red star", False, False, [1, 1], [1, 1], [1, 1], False,
     "then then a red star"),
    ("a red circle and a blue", False, False, [0, 0], [0, 0], [0, 0], False, "a red circle and a blue"),
])
def test_judge_caption_on_hand_made_captions(caption, count, arrangement, color, shape, size, right, wrong):
    verdict = shapes.judge_caption(caption, ROW)
    assert verdict["count"] == count and verdict["arrangement"] == arrangement and verdict["right"] == right
    assert verdict["color"] == [bool(c) for c in color]
    assert verdict["shape"] == [bool(s) for s in shape]
    assert verdict["size"] == [bool(s) for s in size]
    marked = " ".join(w for w, bad in zip(caption.split(), verdict["wrong_words"]) if bad)
    assert marked == wrong


@pytest.mark.parametrize("caption, misbound", [
    ("a large red circle to the left of a small blue square", False),
    ("a large red square to the left of a small blue circle", True),   # the shapes swapped
    ("a large blue circle to the left of a small red square", True),   # the colors swapped
    ("a large red triangle to the left of a large blue square", True),  # the circle's size on the square
    ("a large green circle to the left of a small blue square", False),  # wrong, but no one's color
    ("a large red circle to the right of a small blue square", False),  # the order is wrong, not a binding
    ("a red circle and a blue", False),                                  # does not read
])
def test_attributes_bound_to_the_wrong_object(caption, misbound):
    assert shapes.judge_caption(caption, ROW)["misbound"] is misbound


def test_scene_accuracy_fractions():
    single = _scene("single", ("star", "yellow", "small"))
    captions = ["a large red circle to the left of a small blue square",  # right
                "a large red circle to the right of a small blue square",  # order wrong
                "a small yellow star",  # right
                "a large yellow diamond",  # shape and size wrong
                "yellow star"]  # does not read
    scenes = [ROW, ROW, single, single, single]
    got = shapes.scene_accuracy(captions, scenes)
    assert got["scene_right"] == pytest.approx(2 / 5)
    assert got["scene_count"] == pytest.approx(4 / 5)
    assert got["scene_arrangement"] == pytest.approx(3 / 5)
    assert got["scene_unparsed"] == pytest.approx(1 / 5)
    # per object: 2 + 2 + 1 + 1 + 1 = 7 objects
    assert got["scene_color"] == pytest.approx(6 / 7)
    assert got["scene_shape"] == pytest.approx(5 / 7)
    assert got["scene_size"] == pytest.approx(5 / 7)
    assert got["scene_misbound"] == 0.0
    swapped = shapes.scene_accuracy(["a large blue circle to the left of a small red square"] + captions[:1],
                                    [ROW, ROW])
    assert swapped["scene_misbound"] == pytest.approx(1 / 2) and swapped["scene_right"] == pytest.approx(1 / 2)
    assert shapes.scene_accuracy({4: "a small yellow star"}, {4: single})["scene_right"] == 1.0
    line = shapes.format_scene_accuracy(got)
    assert line.startswith("scene: right 40.0% | count 80.0%") and "unparsed 20.0% misbound 0.0%" in line
    with pytest.raises(ValueError, match="2 captions and 1 scenes"):
        shapes.scene_accuracy(captions[:2], scenes[:1])
    with pytest.raises(ValueError, match="captions is empty"):
        shapes.scene_accuracy([], [])


def test_scenes_load_back_from_a_dataset(tmp_path):
    path = shapes.make_shapes_dataset(tmp_path / "d", "tiny", num_train_images=6, num_val_images=4, seed=5)
    scenes = shapes.load_scenes(path, "val")
    assert len(scenes) == 4 and all(isinstance(s, shapes.Scene) for s in scenes)
    rng = np.random.default_rng(5)
    for scene in scenes:
        for caption in shapes.describe_scene(scene, rng, 3):
            assert shapes.judge_caption(caption, scene)["right"] or shapes.parse_caption(caption) is None
    assert shapes.load_scenes(tmp_path, "val") is None  # not a shapes dataset
    captions = {0: "<START> " + shapes.describe_scene(scenes[0], rng, 1)[0] + " <END>"}
    scores, verdicts = shapes.accuracy.judge_dataset_captions(path, "val", captions)
    assert set(verdicts) == {0} and scores["scene_unparsed"] in (0.0, 1.0)
    assert shapes.accuracy.judge_dataset_captions(tmp_path, "val", captions) == (None, None)


# ---------------------------------------------------------------------------------------------------
# Out-of-distribution distance, and a small training run


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    return shapes.make_shapes_dataset(tmp_path_factory.mktemp("shapes") / "small", "tiny", num_train_images=300,
                                      num_val_images=60, seed=4)


def test_feature_distance_tells_noise_and_photos_from_shapes_images(small_dir):
    rng = np.random.default_rng(0)
    val = [shapes.render_scene(shapes.sample_scene(rng)) for _ in range(40)]  # fresh images of the dataset's kind
    _, near, limit = shapes.featurize_for_dataset(val, small_dir, return_distance=True)
    noise = list(rng.integers(0, 256, (5, 96, 96, 3), dtype=np.uint8))
    yy, xx = np.mgrid[0:96, 0:96] / 96.0
    smooth = np.stack([120 + 100 * np.sin(6 * xx), 90 + 80 * yy, 160 - 90 * xx * yy], axis=-1)  # sky-like
    photo_like = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    _, far, _ = shapes.featurize_for_dataset(noise + [photo_like], small_dir, return_distance=True)
    assert (near <= limit).mean() >= 0.95
    assert (far > limit).all(), (far, limit)
    assert far.min() > 2 * np.median(near)


def _train_and_score(base, zero_features):
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.coco_utils import load_coco_data
    from cs231n.metrics import score_model

    np.random.seed(0)
    data = load_coco_data(base_dir=str(base))
    if zero_features:
        for split in ("train", "val"):
            data[f"{split}_features"] = np.zeros_like(data[f"{split}_features"])
    model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1], wordvec_dim=32,
                          hidden_dim=48, cell_type="lstm")
    solver = CaptioningSolver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                              lr_decay=0.9, batch_size=100, num_epochs=10, print_every=1000, verbose=False,
                              num_val_images=0)
    solver.train()
    _, captions = score_model(model, data, split="val", return_captions=True)
    scores, _ = shapes.accuracy.judge_dataset_captions(base, "val", captions)
    return scores


def test_training_reads_the_images_far_better_than_the_image_blind_baseline(small_dir):
    real = _train_and_score(small_dir, zero_features=False)
    blind = _train_and_score(small_dir, zero_features=True)
    # 300 images and 150 iterations: far from right captions, but every attribute it can see is better read
    assert real["scene_unparsed"] < 0.2
    assert real["scene_count"] > blind["scene_count"] + 0.25
    assert real["scene_color"] > blind["scene_color"] + 0.2
    assert real["scene_size"] > blind["scene_size"] + 0.1
    assert real["scene_right"] >= blind["scene_right"]
