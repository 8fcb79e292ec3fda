"""Training of image-captioning models: cs231n's ``CaptioningSolver`` with validation and checkpoints.

Classic use (cs231n scripts and notebooks run unchanged)::

    solver = CaptioningSolver(model, data, update_rule='adam', optim_config={'learning_rate': 5e-3},
                              lr_decay=0.95, batch_size=25, num_epochs=50, print_every=10, verbose=True)
    solver.train()
    plt.plot(solver.loss_history)

prints exactly the classic lines, ``(Iteration 1 / 100) loss: 76.913486`` every ``print_every``
iterations, and nothing else; it validates nothing and writes nothing, so it runs as fast as the
classic solver.

``model`` has ``params``, ``loss(features, captions) -> (loss, grads)`` and ``sample(features)``
(e.g. :class:`cs231n.classifiers.rnn.CaptioningRNN`); ``data`` is the dict of
:func:`cs231n.coco_utils.load_coco_data`. Every iteration draws a minibatch with
``sample_coco_minibatch(data, batch_size=batch_size, split='train')``, which uses the global
``np.random`` as in cs231n.

Beyond cs231n, each switched on by its own option (``python -m cs231n train`` switches them on): all
the options of :class:`cs231n.solver.Solver` (``progress='eta'`` or ``'bar'``, ``checkpoint_name``,
``checkpoint_every``, ``resume_from``, ``init_from``, ``grad_clip``, ``seed``) and:

- ``num_val_images`` (0: off): at the end of every epoch, a fixed subset of that many val images is
  used to compute the val loss over all their captions, greedy captions from ``model.sample``, and
  multi-reference BLEU-1..4 and CIDEr-D (:func:`cs231n.metrics.score_captions`) against all their
  captions, and a line ``(Epoch e / E) train loss: .., val loss: .., BLEU-4: .., CIDEr: ..`` is
  printed. The subset is chosen once with ``np.random.default_rng(seed)`` (``default_rng(0)`` when
  ``seed`` is None), so it is the same in every run and the global generator is left alone. Results
  go to ``val_history``; the parameters with the best CIDEr are kept in ``best_params``
  (``best_val_cider``). Data without a val split is then an error. When more than half of the
  sampled captions are one and the same sentence, a warning says so: a model that ignores the image
  and emits one caption is a common silent failure.
- ``scene_dir`` (None: off): the directory of a shapes dataset (:mod:`cs231n.data.shapes`) whose val
  split ``data`` holds; each validation then also judges the greedy captions against the scenes the
  images show (:func:`cs231n.data.shapes.accuracy.scene_accuracy`) and adds ``scene_right`` (the
  fraction of captions entirely right) and its parts (``scene_count``, ``scene_color``, ...) to the
  scores and the epoch line. ``val_scenes`` (a list of scenes, one per row of ``data['val_features']``)
  does the same for a "val" split that is not the dataset's, e.g. training images held out by
  :func:`cs231n.coco_utils.hold_out_images` (``python -m cs231n train`` validates on those).
- ``select_on`` ('CIDEr'): the score whose best epoch is kept in ``best_params``: 'CIDEr', 'Bleu_1' ..
  'Bleu_4', or, with scenes, 'scene_right'.
- ``val_name`` ('val'): what the epoch line calls the validated split (e.g. 'held-out').

The classic class's accuracy attributes are there too, with what they mean for captioning:
``check_accuracy(features, captions)`` measures the teacher-forced next-word accuracy (for models
with a ``scores`` method, as CaptioningRNN); ``train_acc_history`` and ``val_acc_history`` stay empty
lists and ``best_val_acc`` stays 0, as in the classic CaptioningSolver, whose ``train()`` never
measured an accuracy either; the per-epoch scores are in ``val_history``.
"""
from collections import Counter
import contextlib
from collections.abc import Mapping
import warnings

import numpy as np

from cs231n.backend import get_array_module, to_numpy
from cs231n.coco_utils import decode_captions, sample_coco_minibatch, strip_framing
from cs231n.metrics import score_captions
from cs231n.solver import Solver

_TRAIN_KEYS = ("train_captions", "train_image_idxs", "train_features")
_VAL_KEYS = ("val_captions", "val_image_idxs", "val_features", "idx_to_word")


def _check_data_fits_model(model, data):
    """Raise ValueError, in the user's terms, when ``data`` cannot train ``model``.

    - the vocabularies differ (the model's ``word_to_idx`` and the data's, when both have one): the
      captions' word indices would mean other words, or fall outside the model's vocabulary;
    - the model's vocabulary numbers a word V or more (a gap below it): that word has no row to be
      read or written with;
    - the features are not finite (NaN or inf make every loss NaN); host arrays only.
    """
    from cs231n._validation import check_finite

    mine, theirs = getattr(model, "word_to_idx", None), data.get("word_to_idx")
    if isinstance(mine, Mapping) and isinstance(theirs, Mapping) and dict(mine) != dict(theirs):
        from cs231n.classifiers.captioning import _vocab_difference

        raise ValueError(f"the vocabularies differ: the model was built with another word_to_idx than the "
                         f"data's ({_vocab_difference(dict(mine), dict(theirs), ('model', 'data'))}), so the "
                         f"captions' word indices would mean other words. Build the model with the data's "
                         f"word_to_idx")
    unusable = getattr(model, "unusable_words", None)
    if unusable:
        raise ValueError(f"the model's vocabulary has a gap: {model._vocabulary_gap}, so the model can neither "
                         f"read nor write {unusable[:5]}. Number the words of word_to_idx 0 to "
                         f"{model.vocab_size - 1}")
    for key in ("train_features", "val_features"):
        if isinstance(data.get(key), np.ndarray) and data[key].dtype.kind == "f":
            check_finite("CaptioningSolver", f"data[{key!r}]", data[key])


@contextlib.contextmanager
def _evaluation_mode(model):
    """Switch off a model's dropout (``model.training``, as the Transformer has) for the block."""
    training = getattr(model, "training", None)
    if training:
        model.training = False
    try:
        yield
    finally:
        if training:
            model.training = training


def _decode_rows(captions, idx_to_word):
    """``decode_captions`` of a 2-D array, always as a list of str."""
    decoded = decode_captions(np.asarray(captions), idx_to_word)
    return [decoded] if isinstance(decoded, str) else list(decoded)


class CaptioningSolver(Solver):
    """Trains a captioning model with minibatch updates; see the module docstring for the options.

    Attributes (besides those of :class:`cs231n.solver.Solver`):
    - data: the data dict
    - val_image_ids: int array, the val images used for validation (empty when it is off)
    - val_history: list of dict, one per epoch, with 'epoch', 'iteration', 'train_loss' (mean loss of
      the epoch's iterations), 'val_loss', 'Bleu_1'..'Bleu_4', 'CIDEr', 'num_val_images',
      'most_common_caption' and 'most_common_fraction' (share of images given that caption)
    - best_val_cider: float or None, the best CIDEr so far; ``best_params`` holds the parameters of the
      best ``select_on`` score (``best_val_score``), by default that CIDEr
    - train_acc_history, val_acc_history: empty lists; best_val_acc: 0 (the classic class's
      attributes, which its ``train()`` never filled either; see the module docstring)
    """

    def __init__(self, model, data, **kwargs):
        """Construct a CaptioningSolver.

        Inputs:
        - model: a captioning model (``params``, ``loss``, ``sample``)
        - data: dict with at least 'train_captions' (N, T) int, 'train_image_idxs' (N,) int and
          'train_features' (num_images, D); validation also uses 'val_captions', 'val_image_idxs',
          'val_features' and 'idx_to_word'
        - kwargs: options, see the module docstrings of this module and :mod:`cs231n.solver`
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a dict (as load_coco_data returns), got {type(data).__name__}")
        missing = [k for k in _TRAIN_KEYS if k not in data]
        if missing:
            raise ValueError(f"data has no key(s) {missing}; it needs {list(_TRAIN_KEYS)}")
        captions = np.asarray(data["train_captions"])
        if captions.ndim != 2:
            raise ValueError(f"data['train_captions'] should have shape (N, T), got {captions.shape}")
        _check_data_fits_model(model, data)
        self.data = data
        self.num_val_images = kwargs.pop("num_val_images", 0)
        if isinstance(self.num_val_images, bool) or not isinstance(self.num_val_images, (int, np.integer)):
            raise TypeError(f"num_val_images must be an int, got {type(self.num_val_images).__name__}")
        if self.num_val_images < 0:
            raise ValueError(f"num_val_images must be >= 0 (0 turns validation off), "
                             f"got {self.num_val_images}")
        self.num_val_images = int(self.num_val_images)
        self.scene_dir = kwargs.pop("scene_dir", None)
        val_scenes = kwargs.pop("val_scenes", None)
        if val_scenes is not None and self.scene_dir is not None:
            raise ValueError("pass scene_dir (the dataset's val scenes) or val_scenes, not both")
        self._val_scenes = None
        if self.scene_dir is not None:
            self._val_scenes = self._load_val_scenes(self.scene_dir)
            what = f"scene_dir: {self.scene_dir} describes {len(self._val_scenes)} val images"
            fix = "pass the directory the data was loaded from"
        elif val_scenes is not None:
            self._val_scenes = list(val_scenes)
            what, fix = f"val_scenes has {len(self._val_scenes)} scenes", "pass one scene per val image, in order"
        if self._val_scenes is not None:
            self._check_scene_count(self._val_scenes, data, what, fix)
        self.select_on = kwargs.pop("select_on", "CIDEr")
        selectable = ("CIDEr", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4") + (
            ("scene_right",) if self._val_scenes is not None else ())
        if self.select_on not in selectable:
            why = " (scene_right needs scene_dir or val_scenes)" if self.select_on == "scene_right" else ""
            raise ValueError(f"select_on must be one of {list(selectable)}{why}, got {self.select_on!r}")
        self.val_name = str(kwargs.pop("val_name", "val"))
        self._warned_repeated = False
        super().__init__(model, **kwargs)

    def _reset(self):
        super()._reset()
        # The classic class's attributes, for code that reads them. Captioning has no accuracy measured
        # during training (the classic train() never filled them either); scores go to val_history.
        self.train_acc_history = []
        self.val_acc_history = []
        self.best_val_acc = 0

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Teacher-forced next-word accuracy of the model on captions `y` of images with features `X`.

        Each caption's words are fed in (as in training) and the model's highest-scoring next word is
        compared with the caption's next word at every step whose target is not ``<NULL>``; the classic
        CaptioningSolver's method of this name returned 0.0 without measuring anything.

        Inputs:
        - X: image features, of shape (N, D) (region features (N, R, D) for an attention model), one row
          per caption (e.g.
          ``data['val_features'][data['val_image_idxs']]``).
        - y: captions, integer word indices of shape (N, T).
        - num_samples: if not None and less than N, score that many captions drawn with
          ``np.random.choice(N, num_samples)`` (the global generator, as in cs231n's Solver).
        - batch_size: captions per forward pass.

        Returns a float in [0, 1]: correctly predicted words / counted words (0.0 when no word counts).
        """
        scores_fn = getattr(self.model, "scores", None)
        if not callable(scores_fn):
            raise TypeError(f"check_accuracy needs model.scores(features, captions) -> (N, T - 1, V) word "
                            f"scores; {type(self.model).__name__} has none")
        X, y = np.asarray(X), np.asarray(y)
        if y.ndim != 2 or X.ndim < 2 or X.shape[0] != y.shape[0]:
            raise ValueError(f"check_accuracy: X should be (N, D) (or region features (N, R, D)) and y "
                             f"(N, T) with the same N, got X {X.shape} and y {y.shape}")
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ValueError(f"check_accuracy: batch_size must be >= 1, got {batch_size}")
        N = y.shape[0]
        if num_samples is not None and N > num_samples:
            mask = np.random.choice(N, num_samples)
            X, y, N = X[mask], y[mask], num_samples
        null = self.data.get("word_to_idx", {}).get("<NULL>", 0)
        correct = counted = 0
        for start in range(0, N, batch_size):
            captions = y[start:start + batch_size]                                # (n, T)
            scores = scores_fn(X[start:start + batch_size], captions)           # (n, T - 1, V)
            predicted = to_numpy(get_array_module(scores).argmax(scores, axis=-1))  # host (n, T - 1)
            targets = captions[:, 1:]                                             # (n, T - 1)
            counts = targets != null                                              # (n, T - 1)
            correct += int(np.sum((predicted == targets) & counts))
            counted += int(np.sum(counts))
        return correct / counted if counted else 0.0

    @staticmethod
    def _load_val_scenes(scene_dir):
        """The val scenes of the shapes dataset in ``scene_dir``."""
        from cs231n.data.shapes.accuracy import load_scenes
        from cs231n.data.shapes.dataset import SCENES_FILE

        scenes = load_scenes(scene_dir, "val")
        if scenes is None:
            raise ValueError(f"scene_dir: {scene_dir} has no {SCENES_FILE}; the scene accuracy needs a shapes "
                             f"dataset (cs231n.data.shapes.ensure_shapes_dataset makes one)")
        return scenes

    @staticmethod
    def _check_scene_count(scenes, data, what, fix):
        """ValueError "{what} but data['val_features'] has M rows; {fix}" unless ``scenes`` holds one scene
        per row of ``data['val_features']``."""
        images = len(data["val_features"]) if "val_features" in data else None
        if images is not None and images != len(scenes):
            raise ValueError(f"{what} but data['val_features'] has {images} rows; {fix}")

    @property
    def best_val_cider(self):
        """The best val CIDEr seen so far (None before the first validation)."""
        if self.select_on == "CIDEr":
            return self.best_val_score
        scores = [entry["CIDEr"] for entry in self.val_history if "CIDEr" in entry]
        return max(scores) if scores else None

    # ------------------------------------------------------------------ Solver hooks

    def _num_train(self):
        return int(np.asarray(self.data["train_captions"]).shape[0])

    def _sample_batch(self):
        captions, features, _ = sample_coco_minibatch(self.data, batch_size=self.batch_size, split="train")
        return features, captions

    def _setup(self):
        """Choose the fixed subset of val images (empty when validation is off)."""
        self.val_image_ids = np.zeros(0, dtype=np.int64)
        if self.num_val_images == 0:
            return
        missing = [k for k in _VAL_KEYS if k not in self.data]
        if missing or len(self.data["val_captions"]) == 0:
            what = "no key(s) %s" % missing if missing else "an empty val split"
            raise ValueError(f"num_val_images={self.num_val_images} asks for validation, but data "
                             f"has {what}; pass num_val_images=0 to train without it")
        if not callable(getattr(self.model, "sample", None)):
            raise TypeError(f"validation needs model.sample(features); {type(self.model).__name__} has "
                            f"none (pass num_val_images=0 to train without validation)")
        image_ids = np.unique(np.asarray(self.data["val_image_idxs"]))
        count = min(self.num_val_images, image_ids.size)
        # Its own generator, so the global np.random that draws the minibatches is left as it was; with
        # seed=None a fixed seed keeps the subset (and so val_history) the same from run to run.
        rng = np.random.default_rng(0 if self.seed is None else self.seed)
        self.val_image_ids = np.sort(rng.choice(image_ids, size=count, replace=False)).astype(np.int64)

    def _epoch_end(self):
        if self.val_image_ids.size == 0:
            return
        scores = self.validate()
        recent = self.loss_history[-self.iterations_per_epoch:]
        entry = {"epoch": self.epoch, "iteration": self.iteration, "train_loss": float(np.mean(recent))}
        entry.update(scores)
        self.val_history.append(entry)
        self._track_best(scores[self.select_on])
        note = ""
        repeated = entry["num_val_images"] >= 2 and entry["most_common_fraction"] > 0.5
        if repeated:
            note = "  (same caption for %.0f%% of images)" % (100 * entry["most_common_fraction"])
        if "scene_right" in entry:
            note = ", scene right: %.1f%%" % (100 * entry["scene_right"]) + note
        self._log("(Epoch %d / %d) train loss: %f, %s loss: %f, BLEU-4: %.4f, CIDEr: %.4f%s"
                  % (self.epoch, self.num_epochs, entry["train_loss"], self.val_name, entry["val_loss"],
                     entry["Bleu_4"], entry["CIDEr"], note))
        if repeated and not self._warned_repeated:
            self._warned_repeated = True
            warnings.warn("epoch %d: the model gave the same caption %r to %d of %d val images; it may be "
                          "ignoring the image features (check the feature scaling, learning rate and "
                          "W_proj)" % (self.epoch, entry["most_common_caption"],
                                       round(entry["most_common_fraction"] * entry["num_val_images"]),
                                       entry["num_val_images"]), stacklevel=3)

    def _config(self):
        config = super()._config()
        config["num_val_images"] = self.num_val_images
        config["select_on"] = self.select_on
        return config

    def _extra_meta(self):
        # The dataset's vocabulary, so that a checkpoint can be decoded even without the model's config.
        vocab = self.data.get("word_to_idx")
        meta = {} if vocab is None else {"word_to_idx": {str(w): int(i) for w, i in vocab.items()}}
        identity = getattr(self.model, "identity", None)  # the training data's record, as model files keep it
        if identity is not None:
            meta["identity"] = identity
        return meta

    def _extra_arrays(self):
        return {"val_image_ids": self.val_image_ids}

    def _restore_extra(self, arrays, meta):
        # Keep the original run's val subset so that val_history stays comparable across the resume.
        if "val_image_ids" in arrays:
            self.val_image_ids = arrays["val_image_ids"].astype(np.int64)

    # ------------------------------------------------------------------ validation

    def validate(self):
        """Val loss and caption scores on the fixed subset ``val_image_ids`` (no state changes).

        Returns a dict with:
        - 'val_loss': float, the loss per caption (summed over time, as in training) over all val
          captions of the subset's images
        - 'Bleu_1'..'Bleu_4', 'CIDEr': floats of ``score_captions`` for the greedy captions of
          ``model.sample``, each image against all of its captions
        - 'num_val_images': int
        - 'most_common_caption': str, the most frequent sampled caption, and 'most_common_fraction':
          float, the share of images that got it
        - with ``scene_dir``: 'scene_right', 'scene_count', 'scene_color', 'scene_shape', 'scene_size',
          'scene_arrangement', 'scene_unparsed' (floats of ``scene_accuracy`` for the greedy captions)
        """
        if self.val_image_ids.size == 0:
            raise ValueError("validate(): validation is off (num_val_images=0 or no val split in data)")
        data = self.data
        ids = self.val_image_ids
        captions = np.asarray(data["val_captions"])      # (N_val, T)
        image_idxs = np.asarray(data["val_image_idxs"])  # (N_val,)
        features = data["val_features"]                  # (num_val_images_total, D)
        rows = np.flatnonzero(np.isin(image_idxs, ids))
        step = self.batch_size

        total = 0.0
        with _evaluation_mode(self.model):
            for start in range(0, rows.size, step):
                chunk = rows[start:start + step]
                loss, _ = self.model.loss(features[image_idxs[chunk]], captions[chunk])
                total += float(loss) * chunk.size  # the model's loss is a mean over the chunk
        val_loss = total / rows.size

        references = {}
        decoded = _decode_rows(captions[rows], data["idx_to_word"])
        for image_id, caption in zip(image_idxs[rows].tolist(), decoded):
            references.setdefault(image_id, []).append(strip_framing(caption))
        candidates = {}
        for start in range(0, ids.size, step):
            chunk = ids[start:start + step]
            sampled = np.asarray(self.model.sample(features[chunk])).reshape(chunk.size, -1)  # (n, L)
            decoded = _decode_rows(sampled, data["idx_to_word"])
            candidates.update(zip(chunk.tolist(), (strip_framing(c) for c in decoded)))

        scores = score_captions(references, candidates)
        caption, count = Counter(candidates.values()).most_common(1)[0]
        result = {"val_loss": val_loss}
        result.update({k: float(v) for k, v in scores.items()})
        if self._val_scenes is not None:
            from cs231n.data.shapes.accuracy import scene_accuracy
            result.update(scene_accuracy(candidates, self._val_scenes))
        result.update({"num_val_images": int(ids.size), "most_common_caption": caption,
                       "most_common_fraction": count / ids.size})
        return result
