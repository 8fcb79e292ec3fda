"""Caption scoring: the notebooks' unigram BLEU, and corpus-level BLEU-1..4 and CIDEr-D.

This module owns every number the project reports about caption quality:

- ``BLEU_score`` and ``evaluate_model`` are the classic cs231n notebook helpers, kept with their exact
  semantics (one reference per caption, unigram BLEU from nltk, averaged over random minibatches) so
  that existing notebooks give the numbers they always gave.
- ``score_captions`` computes the metrics papers report: corpus-level BLEU-1..4 and CIDEr-D over all
  reference captions of each image, in pure Python (no Java, no coco-caption install). The values agree
  with pycocoevalcap's ``Bleu(4)`` and ``Cider()`` given the same whitespace-tokenized strings.
- ``references_from_data`` and ``score_model`` connect it to the data dict of ``cs231n.coco_utils``
  and to a model with a ``sample(features)`` method.

Tokens. ``score_captions`` splits on whitespace; it does no PTB tokenization, lowercasing or
punctuation removal (decoded captions are already lowercase, space-separated words). The framing tokens
``<NULL>``, ``<START>`` and ``<END>`` are removed from references and candidates before scoring: they
mark where a caption begins and ends and carry no content, and leaving them in would award every
caption free n-gram matches. ``<UNK>`` is kept as an ordinary word. The stored references already had
rare words replaced by ``<UNK>``, and the original word cannot be recovered, so ``<UNK>`` is a real
position in the reference: dropping it would shorten the reference and join words that were never
adjacent into n-grams. Because ``<UNK>`` occurs in the references of many images, CIDEr's
document-frequency weighting makes it worth little; BLEU counts it like any word. (The notebooks'
``BLEU_score`` drops ``<UNK>``; that function keeps its historical behaviour.)

BLEU (as coco-caption's ``bleu_scorer`` with option ``'closest'``). Clipped n-gram matches and n-gram
counts are summed over the whole corpus before the precisions are formed; the effective reference
length of each image is the reference length closest to the candidate's (ties go to the shorter one);
the brevity penalty ``exp(1 - r/c)`` is applied once, from the corpus totals ``r`` and ``c``. The
precisions are ``(matches + 1e-15) / (count + 1e-9)``, so a corpus with no matches scores about 0
rather than failing, and BLEU-n is the geometric mean of the first n precisions.

CIDEr-D (as pycocoevalcap's ``cider_scorer``). Each sentence becomes, for n = 1..4, a vector of n-gram
weights ``tf * (log(M) - log(max(1, df)))``, where M is the number of images and ``df`` the number of
images whose references contain the n-gram. For each reference, the score of order n is the clipped
cosine ``sum(min(c, r) * r) / (|c| |r|)`` times a length penalty ``exp(-delta**2 / (2 * 6**2))``, with
``delta`` the difference of the two sentences' bigram counts, as pycocoevalcap has it (the same as the
difference of their lengths when both are non-empty; an empty sentence scores 0 anyway). An image's
score is the mean over n, averaged over its references and multiplied by 10; the corpus score is the
mean over images.

CIDEr is a corpus statistic. The document frequencies come from the whole reference set, so one
image's score depends on which other images are scored with it; scores computed on different image
sets are not comparable, and a corpus of a single image scores 0 (every weight is ``log(1) = 0``).
Scale: because of the factor 10, values run from 0 to 10, not 0 to 1. The clipped cosine is at most 1,
so 10 is the ceiling, reached by a candidate of four or more words identical to every reference of its
image (provided, for each order, one of its n-grams is missing from some other image's references).
Published COCO captioning models score roughly 0.9 to 1.2 on this scale, often written as 90 to 120.

Binary classification (the CoLA sentence classifiers): ``binary_confusion_matrix``, ``accuracy`` and
``matthews_corrcoef``. The Matthews correlation coefficient is
``(TP*TN - FP*FN) / sqrt((TP+FP) (TP+FN) (TN+FP) (TN+FN))``, from -1 (always wrong) through 0 (no better
than chance, e.g. always predicting the majority class) to 1; when a factor of the denominator is 0
(only one class predicted, or only one present) it is defined as 0, as scikit-learn does.
"""
import math
from collections import Counter
from collections.abc import Mapping

import numpy as np

# Framing tokens removed before corpus scoring; <UNK> is deliberately absent (see the module docstring).
SPECIAL_TOKENS = frozenset({'<NULL>', '<START>', '<END>'})

# Tokens whose presence (as a substring) drops a word in the notebooks' BLEU_score.
_NOTEBOOK_DROPPED = ('<START>', '<END>', '<UNK>')

_MAX_N = 4           # n-gram orders 1..4 for both BLEU and CIDEr-D
_BLEU_TINY = 1e-15   # added to matches, so a zero count of matches gives ~0 and not 0/0
_BLEU_SMALL = 1e-9   # added to n-gram counts and lengths, so no division by zero
_CIDER_SIGMA = 6.0   # standard deviation of CIDEr-D's Gaussian length penalty
_CIDER_SCALE = 10.0  # CIDEr-D's final multiplier

_SPLITS = ('train', 'val')


def BLEU_score(gt_caption, sample_caption):
    """Unigram BLEU of one sampled caption against one ground-truth caption (the notebooks' helper).

    Both captions are split on single spaces; any token containing ``<START>``, ``<END>`` or ``<UNK>``
    is dropped; the score is ``nltk.translate.bleu_score.sentence_bleu([reference], hypothesis,
    weights=[1])``, i.e. the clipped unigram precision times the brevity penalty ``exp(1 - r/c)``
    (1 when the hypothesis is longer than the reference). A hypothesis that is empty after dropping
    tokens, or that shares no word with the reference, scores 0.0.

    Inputs:
    - gt_caption: str, the ground-truth caption, e.g. ``'<START> a dog runs <END>'``
    - sample_caption: str, the model's caption

    Returns:
    - score: float in [0, 1]
    """
    from nltk.translate.bleu_score import sentence_bleu

    for name, caption in (('gt_caption', gt_caption), ('sample_caption', sample_caption)):
        if not isinstance(caption, str):
            raise TypeError(f"BLEU_score: {name} must be a str, got {type(caption).__name__}")
    reference = [w for w in gt_caption.split(' ') if not any(t in w for t in _NOTEBOOK_DROPPED)]
    hypothesis = [w for w in sample_caption.split(' ') if not any(t in w for t in _NOTEBOOK_DROPPED)]
    return float(sentence_bleu([reference], hypothesis, weights=[1]))


def evaluate_model(model, data, batch_size=1000, splits=('train', 'val')):
    """Average unigram BLEU of a model's samples on random minibatches (the notebooks' helper).

    For each split, draws ``batch_size`` captions with ``sample_coco_minibatch`` (which uses
    ``np.random``, so ``np.random.seed`` makes the draw reproducible), samples a caption for each image
    with ``model.sample(features)``, decodes both, and averages ``BLEU_score`` over the pairs. Each
    sample is compared with one ground-truth caption only; for multi-reference scores use
    ``score_model``. Prints ``Average BLEU score for <split>: <value>`` for each split.

    Inputs:
    - model: an object with ``sample(features)`` returning captions of shape (N, T), int indices
    - data: the dict of ``cs231n.coco_utils.load_coco_data``
    - batch_size: int, captions drawn per split
    - splits: sequence of split names among 'train' and 'val'

    Returns:
    - scores: dict mapping each split to its average BLEU (float)
    """
    from cs231n.coco_utils import decode_captions, sample_coco_minibatch

    _check_positive_int('evaluate_model', 'batch_size', batch_size)
    if isinstance(splits, str):
        splits = (splits,)
    for split in splits:
        _check_split('evaluate_model', split)
    scores = {}
    for split in splits:
        gt_captions, features, _urls = sample_coco_minibatch(data, split=split, batch_size=batch_size)
        gt_captions = decode_captions(gt_captions, data['idx_to_word'])
        sample_captions = decode_captions(model.sample(features), data['idx_to_word'])
        total = sum(BLEU_score(gt, sample) for gt, sample in zip(gt_captions, sample_captions))
        scores[split] = total / len(sample_captions)
    for split, value in scores.items():
        print('Average BLEU score for %s: %f' % (split, value))
    return scores


def score_captions(references, candidates, return_per_image=False):
    """Corpus-level BLEU-1..4 and CIDEr-D of candidate captions against multiple references.

    Captions are split on whitespace and ``<NULL>``, ``<START>``, ``<END>`` tokens are removed;
    ``<UNK>`` is kept as a word (see the module docstring for why, and for the exact definitions).
    The values equal those of pycocoevalcap's ``Bleu(4)`` and ``Cider()`` on the same tokens. CIDEr-D
    is a corpus statistic: an image's score depends on the other images' references.

    Inputs:
    - references: dict mapping an image id to a non-empty list of reference captions (str)
    - candidates: dict mapping the same image ids to one candidate caption (str) each
    - return_per_image: bool; if True, also return each image's CIDEr-D score

    Returns:
    - scores: dict with float values under 'Bleu_1', 'Bleu_2', 'Bleu_3', 'Bleu_4' (in [0, 1]) and
      'CIDEr' (in [0, 10], see the module docstring for the scale)
    - cider_per_image (only if return_per_image): dict mapping each image id to its CIDEr-D score;
      their mean is ``scores['CIDEr']``
    """
    image_ids = _check_corpus(references, candidates)
    cand_counts = []  # per image: a list of _MAX_N Counters
    ref_counts = []   # per image: a list over references of lists of _MAX_N Counters
    for image_id in image_ids:
        cand_counts.append(_ngram_counts(_content_tokens(candidates[image_id])))
        ref_counts.append([_ngram_counts(_content_tokens(r)) for r in references[image_id]])

    bleu = _corpus_bleu(cand_counts, ref_counts)
    cider_per_image = _cider_d(cand_counts, ref_counts)
    scores = {'Bleu_%d' % (k + 1): bleu[k] for k in range(_MAX_N)}
    scores['CIDEr'] = float(np.mean(cider_per_image))
    if return_per_image:
        return scores, dict(zip(image_ids, cider_per_image))
    return scores


def references_from_data(data, split):
    """Group the decoded captions of a split by image: every caption present in ``data`` is a reference.

    With ``max_train`` subsampling the training split holds only the sampled captions, so its images
    have fewer (and repeated) references; the val split keeps all of them.

    Inputs:
    - data: dict with '<split>_captions' (N, T) int, '<split>_image_idxs' (N,) int and 'idx_to_word'
    - split: 'train' or 'val'

    Returns:
    - references: dict mapping each image index (int) that has a caption to its list of decoded
      captions (str, still framed by ``<START>``/``<END>``, which ``score_captions`` removes), in
      increasing order of image index
    """
    from cs231n.coco_utils import decode_captions

    _check_split('references_from_data', split)
    captions, image_idxs = _split_arrays('references_from_data', data, split)
    decoded = decode_captions(captions, data['idx_to_word'])
    if isinstance(decoded, str):  # decode_captions returns a str for a single 1-D caption
        decoded = [decoded]
    grouped = {}
    for image_idx, caption in zip(image_idxs.tolist(), decoded):
        grouped.setdefault(image_idx, []).append(caption)
    return {image_idx: grouped[image_idx] for image_idx in sorted(grouped)}


def score_model(model, data, split='val', num_images=None, batch_size=500, return_captions=False,
                **sample_kwargs):
    """Caption the images of a split with ``model.sample`` and score them with ``score_captions``.

    Every image of the split that has a caption is captioned once and compared with all of its
    captions. ``num_images`` keeps the first images in increasing index order (deterministic, so
    repeated calls score the same images; remember CIDEr-D depends on that set).

    Inputs:
    - model: an object with ``sample(features, **sample_kwargs)`` returning (N, T) int captions
    - data: the dict of ``cs231n.coco_utils.load_coco_data``
    - split: 'train' or 'val'
    - num_images: int or None (all images)
    - batch_size: int, images captioned per call of ``model.sample``
    - return_captions: also return the generated captions, {image_id: str}, so a caller can look at
      them (or count distinct ones) without sampling again
    - sample_kwargs: passed on to ``model.sample`` (e.g. ``max_length``, ``beam_size``)

    Returns:
    - scores: the dict of ``score_captions``; with ``return_captions``, the pair (scores, captions)
    """
    from cs231n.coco_utils import decode_captions

    _check_positive_int('score_model', 'batch_size', batch_size)
    if num_images is not None:
        _check_positive_int('score_model', 'num_images', num_images)
    references = references_from_data(data, split)
    image_ids = list(references)[:num_images]
    features_key = '%s_features' % split
    if features_key not in data:
        raise ValueError(f"score_model: data has no key '{features_key}'")
    features = data[features_key]
    candidates = {}
    for start in range(0, len(image_ids), batch_size):
        batch_ids = image_ids[start:start + batch_size]
        sampled = model.sample(features[np.asarray(batch_ids)], **sample_kwargs)  # (N, T)
        decoded = decode_captions(np.asarray(sampled).reshape(len(batch_ids), -1), data['idx_to_word'])
        if isinstance(decoded, str):
            decoded = [decoded]
        candidates.update(zip(batch_ids, decoded))
    scores = score_captions({i: references[i] for i in image_ids}, candidates)
    return (scores, candidates) if return_captions else scores


def _content_tokens(caption):
    """Whitespace tokens of a caption without the framing tokens <NULL>, <START>, <END>."""
    return [w for w in caption.split() if w not in SPECIAL_TOKENS]


def _ngram_counts(tokens):
    """Counts of the 1..4-grams of a token list: a list of 4 Counters, entry k for (k+1)-grams."""
    counts = []
    for n in range(1, _MAX_N + 1):
        counts.append(Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)))
    return counts


def _corpus_bleu(cand_counts, ref_counts):
    """BLEU-1..4 with matches, counts and lengths summed over the corpus (coco-caption's 'closest').

    Inputs:
    - cand_counts: per image, the list of 4 n-gram Counters of its candidate
    - ref_counts: per image, a list over its references of such lists

    Returns:
    - bleu: list of 4 floats, BLEU-1..BLEU-4
    """
    matches = [0] * _MAX_N  # clipped n-gram matches, summed over images
    totals = [0] * _MAX_N   # candidate n-grams, summed over images
    cand_len = 0
    ref_len = 0
    for cand, refs in zip(cand_counts, ref_counts):
        length = sum(cand[0].values())
        cand_len += length
        # Closest reference length; a tie goes to the shorter reference.
        ref_len += min((abs(sum(r[0].values()) - length), sum(r[0].values())) for r in refs)[1]
        for k in range(_MAX_N):
            max_ref = Counter()
            for r in refs:
                max_ref |= r[k]  # elementwise max of counts over the references
            matches[k] += sum(min(count, max_ref[gram]) for gram, count in cand[k].items())
            totals[k] += max(0, length - k)
    bleu = []
    product = 1.0
    for k in range(_MAX_N):
        product *= (matches[k] + _BLEU_TINY) / (totals[k] + _BLEU_SMALL)
        bleu.append(product ** (1.0 / (k + 1)))
    ratio = (cand_len + _BLEU_TINY) / (ref_len + _BLEU_SMALL)
    if ratio < 1:
        penalty = math.exp(1.0 - 1.0 / ratio)
        bleu = [b * penalty for b in bleu]
    return bleu


def _cider_d(cand_counts, ref_counts):
    """CIDEr-D score of each image (pycocoevalcap's definition, sigma 6, times 10).

    Inputs: as ``_corpus_bleu``.

    Returns:
    - scores: list of floats, one per image
    """
    num_images = len(cand_counts)
    doc_freq = Counter()  # n-gram -> number of images whose references contain it
    for refs in ref_counts:
        doc_freq.update({gram for r in refs for order in r for gram in order})
    log_num_images = math.log(float(num_images))

    def tfidf(counts):
        """Weights, norms and bigram count of one sentence's n-gram Counters."""
        vectors, norms = [], []
        for order in counts:
            vec = {gram: tf * (log_num_images - math.log(max(1.0, doc_freq[gram])))
                   for gram, tf in order.items()}
            vectors.append(vec)
            norms.append(math.sqrt(sum(w * w for w in vec.values())))
        return vectors, norms, sum(counts[1].values())

    scores = []
    for cand, refs in zip(cand_counts, ref_counts):
        c_vecs, c_norms, c_len = tfidf(cand)
        per_order = np.zeros(_MAX_N)  # (4,) similarities summed over references
        for r in refs:
            r_vecs, r_norms, r_len = tfidf(r)
            penalty = math.exp(-float(c_len - r_len) ** 2 / (2 * _CIDER_SIGMA ** 2))
            for k in range(_MAX_N):
                if c_norms[k] == 0 or r_norms[k] == 0:
                    continue  # one side has no n-grams of this order (or only zero weights)
                r_vec = r_vecs[k]
                dot = sum(min(w, r_vec.get(gram, 0.0)) * r_vec.get(gram, 0.0)
                          for gram, w in c_vecs[k].items())
                per_order[k] += dot / (c_norms[k] * r_norms[k]) * penalty
        scores.append(float(per_order.mean() / len(refs) * _CIDER_SCALE))
    return scores


def _check_corpus(references, candidates):
    """Validate score_captions' inputs and return the image ids in the order of ``references``."""
    fn = 'score_captions'
    for name, value in (('references', references), ('candidates', candidates)):
        if not isinstance(value, Mapping):
            raise TypeError(f"{fn}: {name} must be a dict keyed by image id, got {type(value).__name__}")
    if len(references) == 0:
        raise ValueError(f"{fn}: references is empty; need at least one image")
    ref_ids, cand_ids = set(references), set(candidates)
    if ref_ids != cand_ids:
        missing = sorted(map(repr, ref_ids - cand_ids))
        extra = sorted(map(repr, cand_ids - ref_ids))
        raise ValueError(f"{fn}: references and candidates must have the same image ids; "
                         f"{len(missing)} without a candidate {missing[:5]}, "
                         f"{len(extra)} without references {extra[:5]}")
    for image_id, refs in references.items():
        if isinstance(refs, str) or not isinstance(refs, (list, tuple)):
            raise TypeError(f"{fn}: references[{image_id!r}] must be a list of str, "
                            f"got {type(refs).__name__}")
        if len(refs) == 0:
            raise ValueError(f"{fn}: references[{image_id!r}] is an empty list; "
                             f"every image needs at least one reference")
        for j, ref in enumerate(refs):
            if not isinstance(ref, str):
                raise TypeError(f"{fn}: references[{image_id!r}][{j}] must be a str, "
                                f"got {type(ref).__name__}")
        candidate = candidates[image_id]
        if not isinstance(candidate, str):
            hint = " (one caption per image, not a list)" if isinstance(candidate, list) else ""
            raise TypeError(f"{fn}: candidates[{image_id!r}] must be a str{hint}, "
                            f"got {type(candidate).__name__}")
    return list(references)


def _check_split(fn, split):
    """Raise ValueError unless ``split`` is 'train' or 'val'."""
    if split not in _SPLITS:
        raise ValueError(f"{fn}: split must be one of {_SPLITS}, got {split!r}")


def _check_positive_int(fn, name, value):
    """Raise unless ``value`` is an int (not bool) greater than 0."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be a positive int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{fn}: {name} must be a positive int, got {value}")


def _split_arrays(fn, data, split):
    """Return the (N, T) captions and (N,) image indices of a split, checking keys and shapes."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{fn}: data must be a dict, got {type(data).__name__}")
    for key in ('%s_captions' % split, '%s_image_idxs' % split, 'idx_to_word'):
        if key not in data:
            raise ValueError(f"{fn}: data has no key '{key}'")
    captions = np.asarray(data['%s_captions' % split])
    image_idxs = np.asarray(data['%s_image_idxs' % split])
    if captions.ndim != 2 or image_idxs.shape != (captions.shape[0],):
        raise ValueError(f"{fn}: {split}_captions should be (N, T) and {split}_image_idxs (N,), "
                         f"got {captions.shape} and {image_idxs.shape}")
    return captions, image_idxs


# ----------------------------------------------------------------------------------------------------
# Binary classification


def _binary_pair(fn, y_true, y_pred):
    """Both label arrays as int64 (N,) arrays of 0/1 of the same length, or raise naming the argument."""
    arrays = []
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        y = np.asarray(y)
        if y.ndim != 1 or (y.size and y.dtype.kind not in "biu"):
            raise ValueError(f"{fn}: {name} must be a 1-D array of 0/1 labels, got shape {y.shape} "
                             f"dtype {y.dtype}")
        if np.any((y != 0) & (y != 1)):
            raise ValueError(f"{fn}: {name} must hold only 0 and 1, got values {np.unique(y)[:5].tolist()}")
        arrays.append(y.astype(np.int64))
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(f"{fn}: y_true has {arrays[0].shape[0]} labels but y_pred has {arrays[1].shape[0]}")
    if arrays[0].size == 0:
        raise ValueError(f"{fn}: no labels given (empty arrays)")
    return arrays


def binary_confusion_matrix(y_true, y_pred):
    """Counts of true/predicted label pairs.

    Inputs:
    - y_true: (N,) true labels in {0, 1}.
    - y_pred: (N,) predicted labels in {0, 1}.

    Returns:
    - counts: (2, 2) int64 array, ``counts[t, p]`` = number of examples with true label t predicted
      as p: ``[[TN, FP], [FN, TP]]``.
    """
    y_true, y_pred = _binary_pair("binary_confusion_matrix", y_true, y_pred)
    return np.bincount(2 * y_true + y_pred, minlength=4).reshape(2, 2)


def accuracy(y_true, y_pred):
    """Fraction of the N predictions that equal the true labels (0/1 arrays of shape (N,))."""
    y_true, y_pred = _binary_pair("accuracy", y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def matthews_corrcoef(y_true, y_pred):
    """The Matthews correlation coefficient of binary predictions (see the module docstring).

    Inputs:
    - y_true: (N,) true labels in {0, 1}.
    - y_pred: (N,) predicted labels in {0, 1}.

    Returns a float in [-1, 1]; 0 when only one class is predicted or present.
    """
    y_true, y_pred = _binary_pair("matthews_corrcoef", y_true, y_pred)
    (tn, fp), (fn, tp) = binary_confusion_matrix(y_true, y_pred).astype(np.float64)
    denominator = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    if denominator == 0:
        return 0.0
    return float((tp * tn - fp * fn) / math.sqrt(denominator))


def _mcc_from_counts(tn, fp, fn, tp):
    """MCC of arrays of confusion counts (float64), 0 where a factor of the denominator is 0."""
    denominator = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, (tp * tn - fp * fn) / np.sqrt(safe), 0.0)


def bootstrap_intervals(y_true, y_pred, num_samples=1000, level=0.95, seed=0):
    """Percentile bootstrap intervals of accuracy and MCC.

    The N (true, predicted) pairs are resampled with replacement ``num_samples`` times
    (``np.random.default_rng(seed)``); each interval runs from the ``(1 - level) / 2`` to the
    ``(1 + level) / 2`` quantile of the resampled scores (numpy's default linear interpolation).

    Inputs:
    - y_true, y_pred: (N,) labels in {0, 1}.
    - num_samples: int >= 1. level: in (0, 1). seed: seed of the resampling.

    Returns a dict with 'accuracy' and 'mcc': each a [low, high] list of floats.
    """
    fn = "bootstrap_intervals"
    y_true, y_pred = _binary_pair(fn, y_true, y_pred)
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"{fn}: num_samples must be an int >= 1, got {num_samples!r}")
    if not 0 < level < 1:
        raise ValueError(f"{fn}: level must be in (0, 1), got {level!r}")
    N = y_true.shape[0]
    rng = np.random.default_rng(seed)
    pair = 2 * y_true + y_pred                                           # (N,) 0=TN 1=FP 2=FN 3=TP
    counts = np.empty((num_samples, 4))
    for lo in range(0, num_samples, 100):                                # (100, N) draws at a time
        idx = rng.integers(0, N, size=(min(100, num_samples - lo), N))
        drawn = pair[idx]
        counts[lo:lo + idx.shape[0]] = np.stack([(drawn == k).sum(axis=1) for k in range(4)], axis=1)
    tn, fp, fn_, tp = counts.T
    q = [(1 - level) / 2, (1 + level) / 2]
    return {"accuracy": np.quantile((tn + tp) / N, q).tolist(),
            "mcc": np.quantile(_mcc_from_counts(tn, fp, fn_, tp), q).tolist()}


def scores_with_intervals(y_true, y_pred, num_samples=1000, level=0.95, seed=0):
    """Accuracy, MCC, their bootstrap intervals (:func:`bootstrap_intervals`), the confusion matrix,
    the share predicted positive and N, as a JSON-ready dict: 'accuracy', 'mcc', 'accuracy_ci',
    'mcc_ci', 'confusion', 'positive_rate', 'num'."""
    intervals = bootstrap_intervals(y_true, y_pred, num_samples, level, seed)
    return {"accuracy": accuracy(y_true, y_pred), "mcc": matthews_corrcoef(y_true, y_pred),
            "accuracy_ci": intervals["accuracy"], "mcc_ci": intervals["mcc"],
            "confusion": binary_confusion_matrix(y_true, y_pred).tolist(),
            "positive_rate": float(np.mean(y_pred)), "num": int(len(y_pred))}
