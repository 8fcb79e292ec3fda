# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A word-level language model
#
# The layers of the captioning notebooks, without the image: a recurrent network reads a text one
# word at a time and learns to predict the next word (`cs231n.classifiers.language_model`). It is
# trained on Chapter I of *Alice's Adventures in Wonderland*, read from `../shared/data/alice.txt`
# beside the repository or from the file named by `CS231N_ALICE_TXT`. Without that file the
# notebook still runs: the sections that need it print why they are skipped, and the others use a
# short sample text.
#
# The steps: tokenize the text and number its words; cut the word stream into windows of inputs and
# next-word targets; check the model's loss and its gradients numerically; overfit a tiny text;
# train on the chapter while watching a held-out part of it; and sample new text at several
# temperatures. As in the captioning notebooks, every numerical check prints its relative error and
# asserts it is below a threshold, and `CS231N_NOTEBOOK_SMALL=1` shrinks the training for the
# tests.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from cs231n.classifiers.language_model import LanguageModelRNN
from cs231n.gradient_check import eval_numerical_gradient, rel_error
from cs231n.lm_solver import LanguageModelSolver
from cs231n.text_utils import (
    TOKENIZERS,
    build_vocab,
    classic_tokenize,
    decode,
    default_alice_path,
    encode,
    join_tokens,
    make_windows,
    prepare_text_data,
    read_text,
    tokenize,
    word_tokenize,
)

# %matplotlib inline
plt.rcParams["figure.dpi"] = 80  # modest figures keep the committed notebook small

# CS231N_NOTEBOOK_SMALL=1 (set by tests/test_notebooks.py) shrinks the slow parts.
SMALL = os.environ.get("CS231N_NOTEBOOK_SMALL", "0") not in ("", "0")
FORWARD_TOL = 1e-8  # a forward computation against the formula written out here
MODEL_TOL = 5e-6    # the whole model's gradient against the numerical one (float64)
print(f"small mode: {SMALL}")

# %% [markdown]
# ## The text

# %%
# A short text of our own for the demonstrations, and for when the chapter is not there.
SAMPLE_TEXT = ("the cat sat on the mat . the dog sat on the log . "
               "the cat saw the dog and the dog saw the cat .")

text_path = default_alice_path()
if os.path.isfile(text_path):
    text = read_text(text_path)
    print(f"{os.path.basename(text_path)}: {len(text):,} characters\n")
    print(text[:500])
else:
    text = None
    print(f"No text at {text_path}. Set CS231N_ALICE_TXT to a UTF-8 text file (or save Chapter I of Alice "
          f"there, e.g. with cs231n.text_utils.download_gutenberg_alice). Training on it is skipped "
          f"below; the other sections use a short sample text.")

# %% [markdown]
# ## Tokens, vocabulary and windows
#
# Two tokenizers. `classic_tokenize` lower-cases the text and splits it on every single space and
# newline, so punctuation stays glued to its word (`'alice,'` and `'alice'` are different words)
# and blank lines give empty-string tokens. `word_tokenize` splits off punctuation as tokens of
# its own, which makes the vocabulary smaller and every word more frequent.

# %%
snippet = text[:120] if text is not None else SAMPLE_TEXT
print("classic:", classic_tokenize(snippet))
print("words:  ", word_tokenize(snippet))
if text is not None:
    for tokenizer in TOKENIZERS:
        tokens = tokenize(text, tokenizer)
        print(f"{tokenizer:8s} {len(tokens):5d} tokens, {len(set(tokens)):4d} distinct")

# %% [markdown]
# `build_vocab` numbers the distinct tokens, most frequent first, after `<UNK>` (index 0, for words
# the vocabulary leaves out). `make_windows` cuts the stream of indices into windows of T inputs;
# the targets are the same window shifted by one word.

# %%
tokens = tokenize(text if text is not None else SAMPLE_TEXT, "classic")
word_to_idx, idx_to_word = build_vocab(tokens)
print(f"V = {len(idx_to_word)}; the most frequent: {idx_to_word[:16]}")

stream = encode(tokens, word_to_idx)
inputs, targets = make_windows(stream, 8, stride=8)
print(f"{inputs.shape[0]} non-overlapping windows of 8 words; the first two:")
for row in range(2):
    print("  inputs: ", decode(inputs[row], idx_to_word))
    print("  targets:", decode(targets[row], idx_to_word))

# %% [markdown]
# ## The model's loss
#
# Word embedding, a recurrent layer started from a zero state, a temporal affine layer to scores
# over the vocabulary, and the softmax cross-entropy of the next word, averaged over all N * T
# targets (the captioning loss divides by N only), so that its `exp` is the perplexity. The check
# computes that mean from the model's scores with a log-softmax written out here. At initialization
# the prediction is close to uniform, so the loss starts near `log(V)`.

# %%
np.random.seed(231)
V, N, T = 50, 6, 7
inputs = np.random.randint(V, size=(N, T))
targets = np.random.randint(V, size=(N, T))
for cell_type in ("rnn", "lstm", "gru"):
    model = LanguageModelRNN(V, wordvec_dim=15, hidden_dim=100, cell_type=cell_type, dtype=np.float64,
                             seed=0)
    loss, _ = model.loss(inputs, targets)
    scores = model.scores(inputs)                                    # (N, T, V)
    shifted = scores - scores.max(axis=2, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
    expected = -np.take_along_axis(log_p, targets[..., None], axis=2).mean()
    err = rel_error(np.array(loss), np.array(expected))
    print(f"{cell_type:4s}: loss {loss:.4f} (log V = {np.log(V):.4f}); "
          f"mean cross-entropy relative error: {err:.2e}")
    assert err < FORWARD_TOL, f"{cell_type}: relative error {err:.2e} is above {FORWARD_TOL:.0e}"
    assert abs(loss - np.log(V)) < 0.5, f"{cell_type}: the initial loss {loss:.3f} is far from log(V)"

# %% [markdown]
# ### Gradient check of the whole model
#
# A small float64 model of each cell type; every parameter's analytic gradient is compared with a
# central-difference estimate of the loss, with the step `h = 1e-4` (see the same check in
# `RNN_Captioning.ipynb` for why).

# %%
np.random.seed(231)
V, N, T = 10, 3, 5
inputs = np.random.randint(V, size=(N, T))
targets = np.random.randint(V, size=(N, T))
for cell_type in ("rnn", "lstm", "gru"):
    model = LanguageModelRNN(V, wordvec_dim=4, hidden_dim=6, cell_type=cell_type, dtype=np.float64, seed=1)
    loss, grads = model.loss(inputs, targets)
    for name in sorted(model.params):
        # eval_numerical_gradient perturbs model.params[name] in place; the lambda ignores its argument.
        grad_num = eval_numerical_gradient(lambda _: model.loss(inputs, targets)[0], model.params[name],
                                           verbose=False, h=1e-4)
        err = rel_error(grad_num, grads[name])
        print(f"{cell_type:4s} {name:8s} relative error: {err:.2e}")
        assert err < MODEL_TOL, f"{cell_type} {name}: relative error {err:.2e} is above {MODEL_TOL:.0e}"

# %% [markdown]
# ## Overfit a tiny text
#
# `prepare_text_data` does the steps above at once: tokens, vocabulary, every window of T words
# (`stride=1`) for training, and non-overlapping windows for measuring. `LanguageModelSolver`
# draws random minibatches of windows and, after every epoch, reports the per-token loss, the
# next-word accuracy and the perplexity. A model that can learn must get nearly every next word of
# a 30-word text right.

# %%
tiny = prepare_text_data(SAMPLE_TEXT, seq_len=8)
tiny_model = LanguageModelRNN(len(tiny["idx_to_word"]), wordvec_dim=8, hidden_dim=32, cell_type="lstm",
                              idx_to_word=tiny["idx_to_word"], seed=0)
tiny_solver = LanguageModelSolver(tiny_model, tiny, update_rule="adam",
                                  optim_config={"learning_rate": 1e-2}, batch_size=10, num_epochs=100,
                                  seed=0, verbose=False)
tiny_solver.train()
last = tiny_solver.val_history[-1]
print(f"after {last['epoch']} epochs: loss {last['train_loss']:.3f}, "
      f"accuracy {last['train_accuracy']:.1%}, perplexity {last['train_perplexity']:.2f}")
assert last["train_accuracy"] > 0.9, "the model did not learn the tiny text"

# %% [markdown]
# ## Train on the chapter
#
# The classic setting: an LSTM with 15-dimensional word vectors and 100 hidden units, windows of 50
# words, minibatches of 30, Adam at 5e-4. The last 10% of the chapter is held out: training
# accuracy climbs as the model memorizes the text it sees, while the held-out perplexity shows how
# little one chapter teaches about English.

# %%
if text is None:
    print("Skipped: no text to train on (see the first cell of 'The text').")
else:
    data = prepare_text_data(text, seq_len=50, tokenizer="classic", val_fraction=0.1)
    print(f"{data['num_train_tokens']} training tokens, V = {len(data['idx_to_word'])}, "
          f"{data['train_inputs'].shape[0]} training windows, "
          f"{data['val_inputs'].shape[0]} held-out windows")
    lm = LanguageModelRNN(len(data["idx_to_word"]), wordvec_dim=15, hidden_dim=100, cell_type="lstm",
                          idx_to_word=data["idx_to_word"], seed=0)
    lm_solver = LanguageModelSolver(lm, data, update_rule="adam", optim_config={"learning_rate": 5e-4},
                                    batch_size=30, num_epochs=2 if SMALL else 20, seed=0, print_every=1000)
    lm_solver.train()

    history = lm_solver.val_history
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4))
    ax_loss.plot(np.arange(1, len(lm_solver.loss_history) + 1), lm_solver.loss_history, lw=0.8,
                 label="training minibatches")
    ax_loss.plot([h["iteration"] for h in history], [h["val_loss"] for h in history], "o-",
                 label="held out")
    ax_loss.set(xlabel="iteration", ylabel="loss per token (nats)")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="training text")
    ax_acc.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="held out")
    ax_acc.set(xlabel="epoch", ylabel="next-word accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    plt.show()
    if not SMALL:
        assert history[-1]["train_accuracy"] > 0.8, "training accuracy stayed below 80%"

# %% [markdown]
# ## Sampling
#
# Starting from a word, the model draws each next word from `softmax(scores / temperature)` and
# feeds it back in. Temperature 0 always takes the likeliest word (greedy decoding, which soon
# loops); 1 samples from the model's own distribution; higher temperatures flatten it towards
# uniform and the text falls apart.

# %%
if text is None:
    print("Skipped: no trained model (no text).")
else:
    start = "alice" if "alice" in lm.word_to_idx else lm.idx_to_word[1]
    for temperature in (0.0, 0.5, 1.0, 1.5):
        words = lm.sample(lm.word_to_idx[start], 30, temperature=temperature, rng=0)
        print(f"temperature {temperature}:")
        print("   ", join_tokens([start] + decode(words, lm.idx_to_word), "classic"), "\n")
