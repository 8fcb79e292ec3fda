"""Training and sampling of word-level language models, on top of the generic :class:`cs231n.solver.Solver`.

:class:`LanguageModelSolver` supplies the Solver's hooks for text: minibatches are windows of a token
stream (``data`` from :func:`cs231n.text_utils.prepare_text_data`), and every epoch ends with the
training text's per-token loss, next-word accuracy and perplexity (and the same on held-out text when
there is some). Update rules, learning-rate decay, gradient clipping, the stop on NaN, atomic
checkpoints and bit-exact resume all come from the Solver.

Two functions give the command line what it needs:

- :func:`train_language_model` reads a text file, trains a :class:`LanguageModelRNN` and writes the
  checkpoint and the per-epoch history;
- :func:`sample_text` loads a checkpoint (or a saved model) and samples words after a start word.

Letters: N windows (minibatch), T timesteps, V vocabulary size, W word-vector size, H hidden size.
"""
import os

import numpy as np

from cs231n import text_utils
from cs231n.archive import atomic_write_json, load_archive
from cs231n.classifiers.language_model import LanguageModelRNN, as_generator
from cs231n.solver import CHECKPOINT_FORMAT, Solver, load_checkpoint

_TRAIN_KEYS = ("train_inputs", "train_targets")

CHECKPOINT_FILE = "lm_checkpoint.npz"
HISTORY_FILE = "lm_history.json"


def _windows(data, prefix):
    """``data[prefix + '_inputs']`` and ``_targets`` as checked int arrays of equal (N, T) shapes."""
    inputs = np.asarray(data[prefix + "_inputs"])
    targets = np.asarray(data[prefix + "_targets"])
    for name, a in ((prefix + "_inputs", inputs), (prefix + "_targets", targets)):
        if a.ndim != 2 or (a.size and a.dtype.kind not in "iu"):
            raise ValueError(f"data[{name!r}] must be an (N, T) integer array, got shape {a.shape} "
                             f"dtype {a.dtype}")
    if inputs.shape != targets.shape:
        raise ValueError(f"data[{prefix + '_inputs'!r}] {inputs.shape} and data[{prefix + '_targets'!r}] "
                         f"{targets.shape} must have the same shape")
    return inputs, targets


class LanguageModelSolver(Solver):
    """Trains a language model on windows of a token stream.

    Options: everything of :class:`cs231n.solver.Solver` (``update_rule``, ``optim_config``,
    ``lr_decay``, ``batch_size``, ``num_epochs``, ``grad_clip``, ``seed``, ``checkpoint_name``,
    ``resume_from`` ...), and:

    - ``eval_batch_size`` (64): windows per forward pass in the end-of-epoch evaluation.
    - ``stop_at_accuracy`` (None): a number in (0, 1]; training ends after the first epoch whose
      training next-word accuracy exceeds it (a checkpoint is written then if ``checkpoint_name`` is
      set; raising ``num_epochs`` or resuming continues the run).

    Each iteration draws ``batch_size`` training windows uniformly at random with replacement from
    ``self.rng``, a ``np.random.Generator`` seeded with ``seed`` (fresh entropy for None) whose state
    goes into checkpoints. An epoch is ``max(N // batch_size, 1)`` iterations for N training windows.

    Attributes (besides those of Solver):
    - data: the data dict.
    - val_history: list of dict, one per epoch: 'epoch', 'iteration', 'loss' (mean training loss of
      the epoch's iterations), 'train_loss', 'train_accuracy', 'train_perplexity' (measured on the
      non-overlapping training windows after the epoch), and 'val_loss', 'val_accuracy',
      'val_perplexity' when there is validation text. Losses are mean cross-entropy per token in nats;
      perplexity is ``exp`` of that. ``best_params`` keeps the parameters of the best validation
      accuracy (of the best training accuracy without validation text).
    - stopped_early: True when ``stop_at_accuracy`` ended the last ``train()``.
    """

    def __init__(self, model, data, **kwargs):
        """Construct a LanguageModelSolver.

        Inputs:
        - model: a language model with ``params``, ``loss(inputs, targets)`` and
          ``evaluate(inputs, targets, batch_size)`` (e.g. :class:`LanguageModelRNN`).
        - data: dict with 'train_inputs' and 'train_targets', int arrays (N, T); optionally
          'train_eval_inputs'/'train_eval_targets' (the windows scored for training accuracy; the
          training windows themselves if absent), 'val_inputs'/'val_targets', and 'tokenizer' (kept in
          checkpoints so that samples are tokenized and joined the same way), as
          :func:`cs231n.text_utils.prepare_text_data` returns.
        - kwargs: options, see the class docstring.
        """
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict (as prepare_text_data returns), got {type(data).__name__}")
        missing = [k for k in _TRAIN_KEYS if k not in data]
        if missing:
            raise ValueError(f"data has no key(s) {missing}; it needs {list(_TRAIN_KEYS)}")
        if not callable(getattr(model, "evaluate", None)):
            raise TypeError(f"model must have a method evaluate(inputs, targets, batch_size), "
                            f"{type(model).__name__} has none")
        self.data = data
        self.train_inputs, self.train_targets = _windows(data, "train")
        prefix = "train_eval" if "train_eval_inputs" in data else "train"
        self.eval_inputs, self.eval_targets = _windows(data, prefix)
        self.val_inputs = self.val_targets = None
        if "val_inputs" in data:
            val_inputs, val_targets = _windows(data, "val")
            if val_inputs.shape[0]:
                self.val_inputs, self.val_targets = val_inputs, val_targets
        self.eval_batch_size = kwargs.pop("eval_batch_size", 64)
        if isinstance(self.eval_batch_size, bool) or not isinstance(self.eval_batch_size, (int, np.integer)) \
                or self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be an int >= 1, got {self.eval_batch_size!r}")
        self.stop_at_accuracy = kwargs.pop("stop_at_accuracy", None)
        if self.stop_at_accuracy is not None:
            s = self.stop_at_accuracy
            is_number = isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, bool)
            if not is_number or not 0 < s <= 1:
                raise ValueError(f"stop_at_accuracy must be None or a number in (0, 1], got {s!r}")
            self.stop_at_accuracy = float(s)
        super().__init__(model, **kwargs)

    # ------------------------------------------------------------------ Solver hooks

    def _num_train(self):
        return int(self.train_inputs.shape[0])

    def _setup(self):
        self.rng = np.random.default_rng(self.seed)

    def _sample_batch(self):
        idx = self.rng.integers(0, self.train_inputs.shape[0], size=self.batch_size)  # (N,)
        return self.train_inputs[idx], self.train_targets[idx]

    def _epoch_end(self):
        recent = self.loss_history[-self.iterations_per_epoch:]
        entry = {"epoch": self.epoch, "iteration": self.iteration, "loss": float(np.mean(recent))}
        entry.update(self.evaluate())
        self.val_history.append(entry)
        has_val = "val_accuracy" in entry
        self._track_best(entry["val_accuracy"] if has_val else entry["train_accuracy"])
        line = ("(Epoch %d / %d) loss: %.4f, train accuracy: %.2f%%, train perplexity: %.2f"
                % (self.epoch, self.num_epochs, entry["loss"], 100 * entry["train_accuracy"],
                   entry["train_perplexity"]))
        if has_val:
            line += ", val accuracy: %.2f%%, val perplexity: %.2f" % (100 * entry["val_accuracy"],
                                                                      entry["val_perplexity"])
        self._log(line)
        if self.stop_at_accuracy is not None and entry["train_accuracy"] > self.stop_at_accuracy:
            self._log("Training accuracy %.2f%% exceeds stop_at_accuracy %.2f%%; stopping after epoch %d."
                      % (100 * entry["train_accuracy"], 100 * self.stop_at_accuracy, self.epoch))
            return True  # Solver.train writes the checkpoint and stops
        return False

    def _config(self):
        config = super()._config()
        config["eval_batch_size"] = int(self.eval_batch_size)
        config["stop_at_accuracy"] = self.stop_at_accuracy
        return config

    def _extra_meta(self):
        meta = {"seq_len": int(self.train_inputs.shape[1])}
        if "tokenizer" in self.data:
            meta["tokenizer"] = str(self.data["tokenizer"])
        return meta

    # ------------------------------------------------------------------ training and evaluation

    def evaluate(self):
        """Per-token loss, next-word accuracy and perplexity of the current model (no state changes).

        Returns a dict with 'train_loss', 'train_accuracy', 'train_perplexity' on the training
        evaluation windows, plus 'val_loss', 'val_accuracy', 'val_perplexity' when there is
        validation text.
        """
        result = {}
        splits = [("train", self.eval_inputs, self.eval_targets)]
        if self.val_inputs is not None:
            splits.append(("val", self.val_inputs, self.val_targets))
        for name, inputs, targets in splits:
            scores = self.model.evaluate(inputs, targets, batch_size=self.eval_batch_size)
            for key in ("loss", "accuracy", "perplexity"):
                result[name + "_" + key] = float(scores[key])
        return result


# ----------------------------------------------------------------------------------------------------
# Entry points for the command line
# ----------------------------------------------------------------------------------------------------

def train_language_model(text_path, cell_type="lstm", wordvec_dim=15, hidden_dim=100, seq_len=50,
                         batch_size=30, num_epochs=50, learning_rate=5e-4, seed=0, out_dir=None,
                         tokenizer="classic", stride=1, val_fraction=0.0, update_rule="adam",
                         lr_decay=1.0, grad_clip=None, stop_at_accuracy=None, resume=False,
                         verbose=True, print_every=100, progress="eta", checkpoint_every=None, device="cpu",
                         divergence_factor=None):
    """Train a word-level language model on a text file; the defaults are the Alice setting.

    The text is tokenized, numbered and cut into windows by :func:`cs231n.text_utils.prepare_text_data`
    (``stride=1``: every window of ``seq_len`` words, so a short text still gives many minibatches per
    epoch), and a :class:`LanguageModelRNN` is trained by :class:`LanguageModelSolver`, which prints
    the loss, training next-word accuracy and perplexity after every epoch.

    Inputs:
    - text_path: path of a UTF-8 text file.
    - cell_type: 'rnn', 'lstm' or 'gru'.
    - wordvec_dim, hidden_dim: W and H.
    - seq_len: T, words per training window.
    - batch_size, num_epochs, learning_rate, update_rule, lr_decay, grad_clip: solver options.
    - seed: int, seeds the initial weights and the minibatch draws.
    - out_dir: directory for ``lm_checkpoint.npz`` (the solver checkpoint, written every epoch) and
      ``lm_history.json`` (the per-epoch metrics); None writes nothing.
    - tokenizer: 'classic' (lower-case, split on single spaces and newlines) or 'words'.
    - stride: distance between training window starts.
    - val_fraction: share of the text, at its end, held out for validation (0 for none).
    - stop_at_accuracy: end training once training accuracy exceeds it (None: run all epochs).
    - resume: continue from ``out_dir``'s checkpoint (same data and options, more epochs allowed).
    - checkpoint_every: also write the checkpoint every that many iterations (None: every epoch only).
    - verbose, print_every, progress: printing options of the solver (here the iteration lines end
      with s/it and the ETA by default, ``progress='eta'``; ``'lines'`` gives the classic lines alone).
    - device: 'cpu' or 'gpu' (CuPy; BackendError when it cannot be used): where the model trains.
    - divergence_factor: stop when the loss has stayed above this many times its first value (see
      :class:`cs231n.solver.Solver`; None: only at NaN/inf).

    Returns a tuple of:
    - model: the trained LanguageModelRNN (its ``idx_to_word`` holds the vocabulary), on ``device``.
    - history: list of dict, one per epoch (:attr:`LanguageModelSolver.val_history`).
    """
    text = text_utils.read_text(text_path)
    data = text_utils.prepare_text_data(text, seq_len, tokenizer=tokenizer, stride=stride,
                                        val_fraction=val_fraction)
    model = LanguageModelRNN(len(data["idx_to_word"]), wordvec_dim, hidden_dim, cell_type,
                             idx_to_word=data["idx_to_word"], seed=seed).to(device)
    checkpoint = None if out_dir is None else os.path.join(os.fspath(out_dir), CHECKPOINT_FILE)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs out_dir, the directory holding the checkpoint")
    if resume and not os.path.exists(checkpoint):
        raise FileNotFoundError(f"resume=True but there is no checkpoint at {checkpoint}")
    if verbose:
        print("Text %s: %d tokens (%s tokenizer), vocabulary of %d words, %d training windows of %d words"
              % (text_path, data["num_tokens"], tokenizer, len(data["idx_to_word"]),
                 data["train_inputs"].shape[0], seq_len))
    solver = LanguageModelSolver(model, data, update_rule=update_rule,
                                 optim_config={"learning_rate": learning_rate}, lr_decay=lr_decay,
                                 batch_size=batch_size, num_epochs=num_epochs, grad_clip=grad_clip,
                                 seed=seed, checkpoint_name=checkpoint,
                                 checkpoint_every=None if checkpoint is None else checkpoint_every,
                                 resume_from=checkpoint if resume else None,
                                 stop_at_accuracy=stop_at_accuracy, verbose=verbose,
                                 print_every=print_every, progress=progress,
                                 divergence_factor=divergence_factor)
    solver.train()
    if out_dir is not None:
        # Non-finite values (an overflowing perplexity) become null: the file stays valid JSON.
        atomic_write_json(os.path.join(os.fspath(out_dir), HISTORY_FILE), solver.val_history)
    return model, solver.val_history


def load_language_model(path, best=False):
    """Load a language model from a solver checkpoint or from :meth:`LanguageModelRNN.save`'s file.

    Inputs:
    - path: the file.
    - best: from a checkpoint, take the parameters of the best epoch (``best_params``) instead of the
      last ones.

    Returns a tuple of:
    - model: LanguageModelRNN.
    - tokenizer: the tokenizer name recorded in the checkpoint ('classic' when none was recorded,
      and for a saved model, which does not record one).
    """
    arrays, meta = load_archive(path)
    if meta.get("format") == CHECKPOINT_FORMAT:
        ckpt = load_checkpoint(path)
        config = ckpt["meta"].get("model_config")
        if not isinstance(config, dict):
            raise ValueError(f"{path} is a solver checkpoint without a model config")
        params = ckpt["best_params"] if best and ckpt["best_params"] else ckpt["params"]
        model = LanguageModelRNN.from_config(config, params)
        tokenizer = ckpt["meta"].get("extra", {}).get("tokenizer", "classic")
    else:
        model = LanguageModelRNN.load(path)
        tokenizer = "classic"
    return model, tokenizer


def sample_text(checkpoint, start_word, length=40, temperature=1.0, seed=None, best=False, device="cpu"):
    """Sample ``length`` words after ``start_word`` from a trained model and return them as text.

    Inputs:
    - checkpoint: path of a solver checkpoint (``lm_checkpoint.npz``) or a saved LanguageModelRNN;
      the model must carry its vocabulary (``idx_to_word``).
    - start_word: a word of the vocabulary (tokenized like the training text, so case does not matter).
    - length: number of words to generate after it.
    - temperature: >= 0; ``p(w) ∝ exp(score(w) / temperature)``, 0 is greedy (see
      :meth:`LanguageModelRNN.sample`).
    - seed: None, an int or a numpy.random.Generator.
    - best: from a checkpoint, use the parameters of its best epoch (see :func:`load_language_model`).
    - device: 'cpu' or 'gpu': where the model samples (the words are the same on both for a seed).

    Returns a str: the start word followed by the sampled words, joined as the tokenizer joins them.
    """
    model, tokenizer = load_language_model(checkpoint, best=best)
    model.to(device)
    if model.idx_to_word is None:
        raise ValueError(f"{checkpoint} holds a model without a vocabulary (idx_to_word); cannot map "
                         f"words to indices")
    if not isinstance(start_word, str):
        raise TypeError(f"start_word must be a str, got {type(start_word).__name__}")
    tokens = [t for t in text_utils.tokenize(start_word, tokenizer) if t]
    if len(tokens) != 1:
        raise ValueError(f"start_word must be one word for the {tokenizer!r} tokenizer, got {start_word!r} "
                         f"-> {tokens}")
    word = tokens[0]
    if word not in model.word_to_idx or word == text_utils.UNK:
        raise ValueError(f"start word {word!r} is not in the model's vocabulary of {model.vocab_size} words")
    rng = as_generator(seed, "sample_text")
    idx = model.sample(model.word_to_idx[word], length, temperature=temperature, rng=rng)
    return text_utils.join_tokens([word] + text_utils.decode(idx, model.idx_to_word), tokenizer)

