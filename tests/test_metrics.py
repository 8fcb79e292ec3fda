"""Tests of cs231n.metrics: the notebooks' BLEU helpers and corpus-level BLEU-1..4 / CIDEr-D.

Expected values come from hand computation written out here, or from pycocoevalcap's ``Bleu(4)`` and
``Cider()`` (skipped when it is not installed). ``evaluate_model``, ``references_from_data`` and
``score_model`` run against the real ``cs231n.coco_utils`` with a tiny data dict and a fake model.
"""
import math

import numpy as np
import pytest

from cs231n.metrics import (BLEU_score, evaluate_model, references_from_data, score_captions,
                            score_model)

FRAMING = {'<NULL>', '<START>', '<END>'}
BLEU_KEYS = ['Bleu_1', 'Bleu_2', 'Bleu_3', 'Bleu_4']


def strip_framing(caption):
    """The caption's whitespace tokens without <NULL>/<START>/<END>, joined by single spaces."""
    return ' '.join(w for w in caption.split() if w not in FRAMING)


def coco_scores(references, candidates):
    """pycocoevalcap's Bleu(4) and Cider() on the same tokens: (bleu list, cider, per-image ciders)."""
    bleu_module = pytest.importorskip('pycocoevalcap.bleu.bleu',
                                      reason='pycocoevalcap is not installed; cross-check skipped')
    cider_module = pytest.importorskip('pycocoevalcap.cider.cider',
                                       reason='pycocoevalcap is not installed; cross-check skipped')
    gts = {i: [strip_framing(r) for r in refs] for i, refs in references.items()}
    res = {i: [strip_framing(c)] for i, c in candidates.items()}
    bleu, _ = bleu_module.Bleu(4).compute_score(gts, res, verbose=0)
    cider, per_image = cider_module.Cider().compute_score(gts, res)
    return bleu, float(cider), dict(zip(gts.keys(), (float(s) for s in per_image)))


def assert_matches_coco(references, candidates):
    """Assert score_captions agrees with pycocoevalcap to 1e-6 on every key and per-image CIDEr."""
    bleu, cider, per_image = coco_scores(references, candidates)
    scores, ours_per_image = score_captions(references, candidates, return_per_image=True)
    for key, want in zip(BLEU_KEYS, bleu):
        assert abs(scores[key] - want) <= 1e-6, (key, scores[key], want)
    assert abs(scores['CIDEr'] - cider) <= 1e-6, (scores['CIDEr'], cider)
    assert ours_per_image.keys() == per_image.keys()
    for image_id, want in per_image.items():
        assert abs(ours_per_image[image_id] - want) <= 1e-6, (image_id, ours_per_image[image_id], want)
    return scores


def random_sentence(rng, words, lo, hi, frame):
    """A sentence of lo..hi words drawn from ``words``, optionally framed by <START>/<END>/<NULL>."""
    tokens = list(rng.choice(words, size=rng.integers(lo, hi + 1)))
    if frame:
        tokens = ['<START>'] + tokens + ['<END>'] + ['<NULL>'] * int(rng.integers(0, 3))
    return ' '.join(tokens)


def random_corpus(seed, num_images=12, max_refs=5, cand_len=(0, 12), ref_len=(1, 12)):
    """References and candidates over a small vocabulary (so n-grams repeat), <UNK> included."""
    rng = np.random.default_rng(seed)
    words = ['a', 'dog', 'cat', 'on', 'the', 'grass', 'runs', '<UNK>']
    references, candidates = {}, {}
    for i in range(num_images):
        num_refs = int(rng.integers(1, max_refs + 1))
        references[i] = [random_sentence(rng, words, *ref_len, frame=rng.random() < 0.5)
                         for _ in range(num_refs)]
        candidates[i] = random_sentence(rng, words, *cand_len, frame=rng.random() < 0.5)
    return references, candidates


# ----------------------------------------------------------------------------------------------------
# BLEU_score (the notebooks' unigram BLEU)

def test_bleu_score_equal_length_is_clipped_unigram_precision():
    # reference a man riding a horse (5), hypothesis a man on a horse (5): matches a:2, man, horse = 4/5;
    # equal lengths give a brevity penalty of exp(1 - 5/5) = 1.
    score = BLEU_score('<START> a man riding a horse <END>', 'a man on a horse <END>')
    assert abs(score - 4 / 5) < 1e-12


def test_bleu_score_short_hypothesis_gets_brevity_penalty():
    # Precision 2/2, reference length 5, hypothesis length 2: exp(1 - 5/2).
    score = BLEU_score('<START> a man riding a horse <END>', 'a horse <END>')
    assert abs(score - math.exp(1 - 5 / 2)) < 1e-12


def test_bleu_score_clips_repeated_words():
    # 'dog dog dog' against 'a dog runs': dog is clipped to 1 match of 3 words; lengths equal.
    assert abs(BLEU_score('<START> a dog runs <END>', 'dog dog dog') - 1 / 3) < 1e-12


def test_bleu_score_drops_tokens_containing_special_markers():
    # <UNK> is dropped from both sides, as are tokens that merely contain a marker ('<END>.').
    assert abs(BLEU_score('<START> a <UNK> dog <END>', 'a dog <UNK> <END>.') - 1.0) < 1e-12


def test_bleu_score_empty_hypothesis_is_zero():
    assert BLEU_score('<START> a dog <END>', '<END>') == 0.0
    assert BLEU_score('<START> a dog <END>', '') == 0.0
    assert isinstance(BLEU_score('<START> a dog <END>', ''), float)


def test_bleu_score_rejects_non_strings():
    with pytest.raises(TypeError, match='sample_caption'):
        BLEU_score('a dog', ['a', 'dog'])
    with pytest.raises(TypeError, match='gt_caption'):
        BLEU_score(None, 'a dog')


# ----------------------------------------------------------------------------------------------------
# score_captions: hand-computed values

def test_perfect_match_gives_bleu_one_and_cider_ten():
    # Disjoint words per image, so every n-gram has document frequency 1 < 3 images: nonzero weights.
    references = {1: ['a b c d e'], 2: ['f g h i'], 3: ['j k l m n o']}
    candidates = {i: refs[0] for i, refs in references.items()}
    scores = score_captions(references, candidates)
    for key in BLEU_KEYS:
        assert abs(scores[key] - 1.0) < 1e-8, key
    assert abs(scores['CIDEr'] - 10.0) < 1e-9


def test_bleu_precisions_and_brevity_are_pooled_over_the_corpus():
    # Image 1: ref 'a b c d' (4), cand 'a b x' (3): 2/3 unigrams, 1/2 bigrams match.
    # Image 2: ref 'x y' (2), cand 'x y z w' (4): 2/4 unigrams, 1/3 bigrams match.
    # Corpus: unigrams 4/7, bigrams 2/5; lengths 7 against 6, so no brevity penalty at all
    # (image 1 alone would be penalized by exp(1 - 4/3)).
    references = {1: ['a b c d'], 2: ['x y']}
    candidates = {1: 'a b x', 2: 'x y z w'}
    scores = score_captions(references, candidates)
    assert abs(scores['Bleu_1'] - 4 / 7) < 1e-8
    assert abs(scores['Bleu_2'] - math.sqrt(4 / 7 * 2 / 5)) < 1e-8
    assert scores['Bleu_3'] < 1e-5  # no trigram matches: only the 1e-15 epsilon remains
    assert scores['Bleu_4'] < scores['Bleu_3']


def test_bleu_brevity_penalty_uses_corpus_lengths():
    scores = score_captions({0: ['a b c d']}, {0: 'a b'})
    assert abs(scores['Bleu_1'] - math.exp(1 - 4 / 2)) < 1e-8
    assert abs(scores['Bleu_2'] - math.exp(1 - 4 / 2)) < 1e-8


def test_bleu_effective_reference_is_the_closest_length():
    # Refs of length 1 and 5, candidate of length 4: closest is 5 (shortest would be 1, average 3).
    scores = score_captions({0: ['a', 'a b c d e']}, {0: 'a b c d'})
    assert abs(scores['Bleu_1'] - math.exp(1 - 5 / 4)) < 1e-8


def test_bleu_closest_length_tie_goes_to_the_shorter_reference():
    # Refs of length 2 and 4, candidate of length 3: both 1 away; the shorter one (2) is used, so there
    # is no brevity penalty. With the longer one it would be exp(1 - 4/3) ~ 0.72.
    scores = score_captions({0: ['a b', 'a b c d']}, {0: 'a b c'})
    assert abs(scores['Bleu_1'] - 1.0) < 1e-8


def test_cider_single_words_hand_computed():
    # Two images, so a word in one image's references has idf log(2) - log(1) = log 2.
    # Image A: 'a' against 'a': unigram cosine 1, no bigrams or longer (those orders score 0),
    # bigram counts equal (0), so CIDEr = 10 * (1 + 0 + 0 + 0) / 4 = 2.5. Image B: 'c' against 'b': 0.
    scores, per_image = score_captions({'A': ['a'], 'B': ['b']}, {'A': 'a', 'B': 'c'},
                                       return_per_image=True)
    assert abs(per_image['A'] - 2.5) < 1e-12
    assert per_image['B'] == 0.0
    assert abs(scores['CIDEr'] - 1.25) < 1e-12


def test_cider_length_penalty_hand_computed():
    # Image A: 'a b' against 'a b': unigram and bigram cosines 1, no trigrams: 10 * 2/4 = 5.
    # Image B: 'c d e f g h i j k' (9 words) against 'c d'. Every n-gram has weight log 2 (df 1, or df 0
    # clamped to 1), so cosines reduce to plain counts: unigrams 2 / (3 * sqrt 2), bigrams 1 / sqrt 8,
    # no trigrams in the reference. Bigram counts 8 and 1 give the penalty exp(-7**2 / (2 * 6**2)).
    scores, per_image = score_captions({'A': ['a b'], 'B': ['c d']},
                                       {'A': 'a b', 'B': 'c d e f g h i j k'}, return_per_image=True)
    expected_b = 10 * (2 / (3 * math.sqrt(2)) + 1 / math.sqrt(8)) / 4 * math.exp(-49 / 72)
    assert abs(per_image['A'] - 5.0) < 1e-12
    assert abs(per_image['B'] - expected_b) < 1e-12
    assert abs(scores['CIDEr'] - (5.0 + expected_b) / 2) < 1e-12


def test_cider_of_a_single_image_corpus_is_zero():
    # log(number of images) = log 1 = 0 makes every tf-idf weight 0.
    scores = score_captions({0: ['a dog runs on the grass']}, {0: 'a dog runs on the grass'})
    assert scores['CIDEr'] == 0.0
    assert abs(scores['Bleu_4'] - 1.0) < 1e-8


def test_cider_is_a_corpus_statistic():
    # Adding an image whose references also contain 'a dog' lowers those n-grams' idf, which changes
    # image 0's score although its own candidate and references are unchanged.
    references = {0: ['a dog runs', 'a dog on grass'], 1: ['the cat sleeps']}
    candidates = {0: 'a dog sleeps', 1: 'the cat'}
    _, alone = score_captions(references, candidates, return_per_image=True)
    references[2] = ['a dog and a cat']
    candidates[2] = 'a cat'
    _, together = score_captions(references, candidates, return_per_image=True)
    assert abs(alone[0] - together[0]) > 1e-3


def test_framing_tokens_are_removed_and_unk_is_kept():
    framed = score_captions({0: ['<START> a b c d <END>', '<START> a b e <END> <NULL> <NULL>'],
                             1: ['<START> x y z <END>']},
                            {0: '<START> a b c <END>', 1: 'x y <END> <NULL>'})
    plain = score_captions({0: ['a b c d', 'a b e'], 1: ['x y z']}, {0: 'a b c', 1: 'x y'})
    for key in BLEU_KEYS + ['CIDEr']:
        assert framed[key] == plain[key], key
    # <UNK> is a word: the reference has 3 tokens, the candidate 2, and the bigram 'a b' is not in the
    # reference. (Stripping <UNK> would give Bleu_1 = Bleu_2 = 1.)
    scores = score_captions({0: ['a <UNK> b']}, {0: 'a b'})
    assert abs(scores['Bleu_1'] - math.exp(1 - 3 / 2)) < 1e-8
    assert scores['Bleu_2'] < 1e-6


def test_empty_candidate_scores_zero_without_error():
    scores = score_captions({0: ['a dog'], 1: ['a cat']}, {0: '', 1: '<START> <END>'})
    assert scores['CIDEr'] == 0.0
    for key in BLEU_KEYS:
        assert 0.0 <= scores[key] < 1e-6, key


def test_accepts_tuples_and_returns_plain_floats():
    scores = score_captions({'img': ('a dog runs', 'a dog')}, {'img': 'a dog'})
    assert sorted(scores) == sorted(BLEU_KEYS + ['CIDEr'])
    assert all(type(v) is float for v in scores.values())


# ----------------------------------------------------------------------------------------------------
# score_captions against pycocoevalcap

@pytest.mark.parametrize('seed', [0, 1, 2, 3, 4, 5])
def test_matches_pycocoevalcap_on_random_corpora(seed):
    references, candidates = random_corpus(seed)
    assert_matches_coco(references, candidates)


@pytest.mark.parametrize('seed', [10, 11, 12])
def test_matches_pycocoevalcap_with_candidates_shorter_than_four_tokens(seed):
    references, candidates = random_corpus(seed, cand_len=(1, 3))
    assert_matches_coco(references, candidates)


@pytest.mark.parametrize('seed', [20, 21])
def test_matches_pycocoevalcap_with_single_reference_images(seed):
    references, candidates = random_corpus(seed, max_refs=1)
    assert all(len(refs) == 1 for refs in references.values())
    assert_matches_coco(references, candidates)


def test_matches_pycocoevalcap_on_reference_length_ties():
    references = {
        0: ['a dog runs', 'a dog runs on grass'],     # lengths 3 and 5 around a candidate of 4
        1: ['a cat', 'a cat on the mat'],             # 2 and 4 around 3
        2: ['the dog on the grass', 'a dog on the grass runs fast'],  # 5 and 7 around 6
        3: ['a b', 'c d e f'],                        # 2 and 4 around 3, no matching words
        4: ['a dog runs', 'a cat runs'],              # equal lengths, no tie to break
    }
    candidates = {0: 'a dog on grass', 1: 'a cat sits', 2: 'a dog runs on the grass', 3: 'x y z',
                  4: 'a dog'}
    assert_matches_coco(references, candidates)


def test_matches_pycocoevalcap_with_empty_candidates():
    references, candidates = random_corpus(30)
    candidates[0] = ''
    candidates[1] = '<START> <END>'
    assert_matches_coco(references, candidates)
    assert_matches_coco(references, {i: '' for i in references})


def test_matches_pycocoevalcap_on_a_single_image():
    assert_matches_coco({7: ['a dog runs', 'the dog']}, {7: 'a dog'})


def test_matches_pycocoevalcap_with_string_image_ids_and_large_corpus():
    references, candidates = random_corpus(40, num_images=150)
    references = {'img%d' % i: refs for i, refs in references.items()}
    candidates = {'img%d' % i: c for i, c in candidates.items()}
    assert_matches_coco(references, candidates)


# ----------------------------------------------------------------------------------------------------
# score_captions: errors

def test_score_captions_rejects_mismatched_ids():
    with pytest.raises(ValueError, match='same image ids'):
        score_captions({0: ['a'], 1: ['b']}, {0: 'a', 2: 'b'})


def test_score_captions_rejects_empty_corpus_and_empty_reference_list():
    with pytest.raises(ValueError, match='at least one image'):
        score_captions({}, {})
    with pytest.raises(ValueError, match=r'references\[0\] is an empty list'):
        score_captions({0: []}, {0: 'a'})


def test_score_captions_rejects_wrong_types():
    with pytest.raises(TypeError, match='references must be a dict'):
        score_captions([['a']], {0: 'a'})
    with pytest.raises(TypeError, match='candidates must be a dict'):
        score_captions({0: ['a']}, ['a'])
    with pytest.raises(TypeError, match=r'references\[0\] must be a list of str'):
        score_captions({0: 'a dog'}, {0: 'a'})
    with pytest.raises(TypeError, match=r'references\[0\]\[1\] must be a str'):
        score_captions({0: ['a', 3]}, {0: 'a'})
    with pytest.raises(TypeError, match=r'candidates\[0\] must be a str \(one caption per image'):
        score_captions({0: ['a']}, {0: ['a']})


# ----------------------------------------------------------------------------------------------------
# evaluate_model, references_from_data, score_model (with the real cs231n.coco_utils)

IDX_TO_WORD = ['<NULL>', '<START>', '<END>', '<UNK>', 'a', 'dog', 'cat', 'runs', 'man']
WORD_TO_IDX = {w: i for i, w in enumerate(IDX_TO_WORD)}


def encode(caption, length):
    """Word indices of a caption, padded with <NULL> to ``length``."""
    idx = [WORD_TO_IDX[w] for w in caption.split()]
    return idx + [WORD_TO_IDX['<NULL>']] * (length - len(idx))


class LookupModel:
    """A fake captioning model: image i (feature[0] == i) always gets ``samples[i]``; records calls."""

    def __init__(self, samples, length=4):
        self.samples = samples
        self.length = length
        self.seen = []    # image indices passed to sample, in order
        self.kwargs = []  # keyword arguments of each call

    def sample(self, features, **kwargs):
        ids = [int(round(f)) for f in np.asarray(features)[:, 0]]
        self.seen.extend(ids)
        self.kwargs.append(kwargs)
        return np.array([encode(self.samples[i], self.length) for i in ids], dtype=np.int32)  # (N, T)


def tiny_data(captions, image_idxs, num_images):
    """A data dict with the keys of load_coco_data; the same captions serve train and val."""
    caps = np.array([encode(c, 6) for c in captions], dtype=np.int32)  # (N, 6)
    features = np.zeros((num_images, 3), dtype=np.float32)
    features[:, 0] = np.arange(num_images)
    urls = np.array(['http://127.0.0.1/%d.jpg' % i for i in range(num_images)])
    data = {'idx_to_word': list(IDX_TO_WORD), 'word_to_idx': dict(WORD_TO_IDX)}
    for split in ('train', 'val'):
        data[split + '_captions'] = caps
        data[split + '_image_idxs'] = np.asarray(image_idxs, dtype=np.int32)
        data[split + '_features'] = features
        data[split + '_urls'] = urls
    return data


def test_evaluate_model_averages_bleu_over_sampled_minibatches(capsys):
    # One caption per image, caption i belongs to image i, so the images the model saw identify the
    # ground truths. Hand-computed unigram BLEU of each image's sample against its caption:
    expected_per_image = {
        0: math.exp(1 - 3 / 2),  # 'a dog' vs 'a dog runs': precision 1, brevity exp(1 - 3/2)
        1: 1.0,                  # 'a cat <UNK>' vs 'a cat': <UNK> dropped
        2: 1 / 3,                # 'dog dog dog' vs 'a dog runs': clipped, equal lengths
    }
    data = tiny_data(['<START> a dog runs <END>', '<START> a cat <END>', '<START> a dog runs <END>'],
                     [0, 1, 2], 3)
    model = LookupModel({0: 'a dog <END>', 1: 'a cat <UNK> <END>', 2: 'dog dog dog'})
    np.random.seed(0)
    scores = evaluate_model(model, data, batch_size=20)

    assert list(scores) == ['train', 'val']
    assert len(model.seen) == 40
    out = capsys.readouterr().out.splitlines()
    for j, split in enumerate(['train', 'val']):
        seen = model.seen[20 * j:20 * (j + 1)]
        expected = sum(expected_per_image[i] for i in seen) / len(seen)
        assert abs(scores[split] - expected) < 1e-12
        assert out[j] == 'Average BLEU score for %s: %f' % (split, expected)


def test_evaluate_model_rejects_bad_arguments():
    data = tiny_data(['<START> a dog <END>'], [0], 1)
    model = LookupModel({0: 'a dog'})
    with pytest.raises(ValueError, match='split'):
        evaluate_model(model, data, splits=('test',))
    with pytest.raises(ValueError, match='batch_size'):
        evaluate_model(model, data, batch_size=0)


def test_references_from_data_groups_every_caption_by_image():
    captions = ['<START> a dog <END>', '<START> a cat <END>', '<START> a man <END>',
                '<START> dog runs <END>', '<START> a <UNK> <END>']
    data = tiny_data(captions, [2, 0, 2, 5, 2], 6)
    references = references_from_data(data, 'val')
    assert list(references) == [0, 2, 5]
    stripped = {i: [strip_framing(r) for r in refs] for i, refs in references.items()}
    assert stripped == {0: ['a cat'], 2: ['a dog', 'a man', 'a <UNK>'], 5: ['dog runs']}
    with pytest.raises(ValueError, match='split'):
        references_from_data(data, 'test')
    with pytest.raises(ValueError, match='train_captions'):
        references_from_data({'idx_to_word': IDX_TO_WORD}, 'train')


def test_score_model_scores_each_image_against_all_its_references():
    captions = ['<START> a dog runs <END>', '<START> a dog <END>', '<START> a cat <END>',
                '<START> a man runs <END>', '<START> dog runs <END>']
    data = tiny_data(captions, [0, 0, 1, 2, 3], 4)
    samples = {0: 'a dog runs <END>', 1: 'a cat <END>', 2: 'a man <END>', 3: 'a dog runs'}
    model = LookupModel(samples)
    scores = score_model(model, data, split='val', batch_size=3, max_length=4)

    assert sorted(model.seen) == [0, 1, 2, 3]
    assert model.kwargs == [{'max_length': 4}, {'max_length': 4}]  # 4 images in batches of 3
    expected = score_captions({0: ['a dog runs', 'a dog'], 1: ['a cat'], 2: ['a man runs'],
                               3: ['dog runs']},
                              {i: strip_framing(s) for i, s in samples.items()})
    assert scores == pytest.approx(expected, abs=1e-12)

    model = LookupModel(samples)
    few = score_model(model, data, split='train', num_images=2)
    assert model.seen == [0, 1]
    expected = score_captions({0: ['a dog runs', 'a dog'], 1: ['a cat']},
                              {0: 'a dog runs', 1: 'a cat'})
    assert few == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match='num_images'):
        score_model(model, data, num_images=0)
