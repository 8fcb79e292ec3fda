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
# # Image captioning with a vanilla RNN
#
# A vanilla recurrent network, `h_t = tanh(x_t Wx + h_{t-1} Wh + b)`, learns to caption images from their feature vectors.
#
# The order follows the cs231n assignment: load the data and look at it; build each layer and check
# it numerically; check the model's loss and its whole gradient; overfit a small dataset; sample
# captions on train and val; score them; compare greedy decoding with beam search; and finally train
# a good model on the full default dataset.
#
# **Data.** By default the notebook uses the synthetic *shapes* dataset (`cs231n.data.shapes`): images
# of colored shapes with five captions each, stored in the cs231n COCO captioning format and
# generated into `datasets/shapes` on first use (under a minute). When the environment variable
# `CS231N_COCO_DIR` points at the real COCO captioning release (`python -m cs231n download coco`),
# the same cells run on COCO instead; nothing needs editing either way.
#
# **Checks.** Every numerical check prints its relative error and then `assert`s it is below a
# threshold, so a wrong gradient stops the notebook (and fails `tests/test_notebooks.py`, which runs
# every notebook headless). `CS231N_NOTEBOOK_SMALL=1` shrinks the slow parts for that test.

# %%
import os
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np

from cs231n.captioning_solver import CaptioningSolver
from cs231n.classifiers.rnn import CaptioningRNN
from cs231n.coco_utils import decode_captions, load_coco_data, sample_coco_minibatch, strip_framing
from cs231n.data.shapes import ensure_shapes_dataset
from cs231n.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from cs231n.image_utils import image_from_url
from cs231n.metrics import evaluate_model, references_from_data, score_captions, score_model
from cs231n.rnn_layers import (
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)
from cs231n.vis import caption_grid, plot_training_curves

# %matplotlib inline
plt.rcParams["figure.dpi"] = 80  # modest figures keep the committed notebook small

# CS231N_NOTEBOOK_SMALL=1 (set by tests/test_notebooks.py) shrinks the slow parts.
SMALL = os.environ.get("CS231N_NOTEBOOK_SMALL", "0") not in ("", "0")
FORWARD_TOL = 1e-8   # a forward pass against the formula written out here
LAYER_TOL = 1e-6     # a layer's analytic gradient against the numerical one (float64)
SEQUENCE_TOL = 1e-5  # the same over T steps, where the numerical gradient's rounding error grows
MODEL_TOL = 5e-6     # the whole model's gradient against the numerical one (float64)
print(f"small mode: {SMALL}")

# %% [markdown]
# ## Data
#
# `load_coco_data` returns a dict: captions as word indices (`<START> ... <END>` padded with
# `<NULL>`), the index of each caption's image, one feature vector per image (512 PCA components
# of VGG-16 fc7 for COCO; for the shapes dataset, the same format from a fixed, hand-written numpy
# featurizer that describes each object in its own slot), the vocabulary and the image URLs.

# %%
USING_COCO = bool(os.environ.get("CS231N_COCO_DIR"))
if USING_COCO:
    data_dir = None  # load_coco_data reads $CS231N_COCO_DIR
    print("Using the COCO captioning release in", os.environ["CS231N_COCO_DIR"])
else:
    # CS231N_SHAPES_SIZE=tiny (the tests) picks a 60-image version of the dataset.
    data_dir = ensure_shapes_dataset(size=os.environ.get("CS231N_SHAPES_SIZE", "default"))
    print("Using the synthetic shapes dataset in", data_dir.name)
data = load_coco_data(base_dir=data_dir)

for key, value in data.items():
    if isinstance(value, np.ndarray):
        print(f"{key:17s} {str(value.shape):14s} {value.dtype}")
    else:
        print(f"{key:17s} {type(value).__name__} of {len(value)}")

# %% [markdown]
# ### Look at the data
#
# Images come from `image_from_url`, which reads `file://` URLs (the shapes dataset) and downloads
# http(s) ones (COCO's Flickr links, many of them dead). With `placeholder=True` a dead link gives a
# grey image with a cross and a printed reason instead of stopping the notebook.

# %%
np.random.seed(231)
captions, features, urls = sample_coco_minibatch(data, batch_size=4, split="train")
fig, axes = plt.subplots(1, 4, figsize=(13, 4))
for ax, caption, url in zip(axes, captions, urls):
    ax.imshow(image_from_url(url, placeholder=True))
    ax.set_title(textwrap.fill(decode_captions(caption, data["idx_to_word"]), 30), fontsize=9)
    ax.axis("off")
plt.show()

# Every image has several reference captions; the minibatch above drew one of them per image.
references = references_from_data(data, "val")
first_image = next(iter(references))
print(f"val image {first_image} has {len(references[first_image])} captions:")
for caption in references[first_image]:
    print("   ", caption)

# %% [markdown]
# ## Vanilla RNN: step forward
#
# One timestep: `next_h = tanh(x @ Wx + prev_h @ Wh + b)`. The check compares `rnn_step_forward`
# with that formula written out here.

# %%
N, D, H = 3, 10, 4
x = np.linspace(-0.4, 0.7, num=N * D).reshape(N, D)
prev_h = np.linspace(-0.2, 0.5, num=N * H).reshape(N, H)
Wx = np.linspace(-0.1, 0.9, num=D * H).reshape(D, H)
Wh = np.linspace(-0.3, 0.7, num=H * H).reshape(H, H)
b = np.linspace(-0.2, 0.4, num=H)

next_h, _ = rnn_step_forward(x, prev_h, Wx, Wh, b)
expected_next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
print(next_h)
err = rel_error(next_h, expected_next_h)
print(f"next_h   relative error: {err:.2e}")
assert err < FORWARD_TOL, f"next_h relative error {err:.2e} is above {FORWARD_TOL:.0e}"

# %% [markdown]
# ## Vanilla RNN: step backward
#
# The gradients of `tanh(a)` flow back through `1 - next_h**2`. Each analytic gradient is compared
# with a central-difference estimate of `sum(next_h * dnext_h)`.

# %%
np.random.seed(231)
N, D, H = 4, 5, 6
x = np.random.randn(N, D)
h = np.random.randn(N, H)
Wx = np.random.randn(D, H)
Wh = np.random.randn(H, H)
b = np.random.randn(H)

out, cache = rnn_step_forward(x, h, Wx, Wh, b)
dnext_h = np.random.randn(*out.shape)
dx, dprev_h, dWx, dWh, db = rnn_step_backward(dnext_h, cache)

numeric = {
    "dx": eval_numerical_gradient_array(lambda x_: rnn_step_forward(x_, h, Wx, Wh, b)[0], x, dnext_h),
    "dprev_h": eval_numerical_gradient_array(lambda h_: rnn_step_forward(x, h_, Wx, Wh, b)[0], h, dnext_h),
    "dWx": eval_numerical_gradient_array(lambda Wx_: rnn_step_forward(x, h, Wx_, Wh, b)[0], Wx, dnext_h),
    "dWh": eval_numerical_gradient_array(lambda Wh_: rnn_step_forward(x, h, Wx, Wh_, b)[0], Wh, dnext_h),
    "db": eval_numerical_gradient_array(lambda b_: rnn_step_forward(x, h, Wx, Wh, b_)[0], b, dnext_h),
}
analytic = {"dx": dx, "dprev_h": dprev_h, "dWx": dWx, "dWh": dWh, "db": db}
for name in analytic:
    err = rel_error(analytic[name], numeric[name])
    print(f"{name:8s} relative error: {err:.2e}")
    assert err < LAYER_TOL, f"{name} relative error {err:.2e} is above {LAYER_TOL:.0e}"

# %% [markdown]
# ## Vanilla RNN: forward over a sequence
#
# `rnn_forward` runs all T timesteps (it projects every timestep's input with one matrix product
# rather than calling the step function T times). It must give the hidden states of the plain loop
# over the formula.

# %%
N, T, D, H = 2, 3, 4, 5
x = np.linspace(-0.1, 0.3, num=N * T * D).reshape(N, T, D)
h0 = np.linspace(-0.3, 0.1, num=N * H).reshape(N, H)
Wx = np.linspace(-0.2, 0.4, num=D * H).reshape(D, H)
Wh = np.linspace(-0.4, 0.1, num=H * H).reshape(H, H)
b = np.linspace(-0.7, 0.1, num=H)

h, _ = rnn_forward(x, h0, Wx, Wh, b)
expected_h = np.zeros((N, T, H))
prev_h = h0
for t in range(T):
    prev_h = np.tanh(x[:, t] @ Wx + prev_h @ Wh + b)
    expected_h[:, t] = prev_h
print(h)
err = rel_error(h, expected_h)
print(f"h        relative error: {err:.2e}")
assert err < FORWARD_TOL, f"h relative error {err:.2e} is above {FORWARD_TOL:.0e}"

# %% [markdown]
# ## Vanilla RNN: backward over a sequence
#
# Backpropagation through time: the upstream gradient `dh` reaches every timestep's hidden state,
# and each step also passes a gradient back to the step before it.

# %%
np.random.seed(231)
N, D, T, H = 2, 3, 10, 5
x = np.random.randn(N, T, D)
h0 = np.random.randn(N, H)
Wx = np.random.randn(D, H)
Wh = np.random.randn(H, H)
b = np.random.randn(H)

out, cache = rnn_forward(x, h0, Wx, Wh, b)
dout = np.random.randn(*out.shape)
dx, dh0, dWx, dWh, db = rnn_backward(dout, cache)

numeric = {
    "dx": eval_numerical_gradient_array(lambda x_: rnn_forward(x_, h0, Wx, Wh, b)[0], x, dout),
    "dh0": eval_numerical_gradient_array(lambda h0_: rnn_forward(x, h0_, Wx, Wh, b)[0], h0, dout),
    "dWx": eval_numerical_gradient_array(lambda Wx_: rnn_forward(x, h0, Wx_, Wh, b)[0], Wx, dout),
    "dWh": eval_numerical_gradient_array(lambda Wh_: rnn_forward(x, h0, Wx, Wh_, b)[0], Wh, dout),
    "db": eval_numerical_gradient_array(lambda b_: rnn_forward(x, h0, Wx, Wh, b_)[0], b, dout),
}
analytic = {"dx": dx, "dh0": dh0, "dWx": dWx, "dWh": dWh, "db": db}
for name in analytic:
    err = rel_error(analytic[name], numeric[name])
    print(f"{name:8s} relative error: {err:.2e}")
    assert err < SEQUENCE_TOL, f"{name} relative error {err:.2e} is above {SEQUENCE_TOL:.0e}"

# %% [markdown]
# ## Word embedding
#
# Each word index picks a row of the embedding matrix `W` (V, D). In the backward pass, gradients
# of repeated words add up in the same row.

# %%
N, T, V, D = 2, 4, 5, 3
x = np.array([[0, 3, 1, 2], [2, 1, 0, 3]])
W = np.linspace(0, 1, num=V * D).reshape(V, D)
out, _ = word_embedding_forward(x, W)
err = rel_error(out, W[x])
print(f"forward  relative error: {err:.2e}")
assert err < FORWARD_TOL, f"forward relative error {err:.2e} is above {FORWARD_TOL:.0e}"

np.random.seed(231)
x = np.random.randint(V, size=(N, T))  # repeats on purpose
W = np.random.randn(V, D)
out, cache = word_embedding_forward(x, W)
dout = np.random.randn(*out.shape)
dW = word_embedding_backward(dout, cache)
dW_num = eval_numerical_gradient_array(lambda W_: word_embedding_forward(x, W_)[0], W, dout)
err = rel_error(dW, dW_num)
print(f"dW       relative error: {err:.2e}")
assert err < LAYER_TOL, f"dW relative error {err:.2e} is above {LAYER_TOL:.0e}"

# %% [markdown]
# ## Temporal affine layer
#
# At every timestep the hidden state (N, T, D) is mapped to scores over the vocabulary with one
# shared affine map: `out[n, t] = x[n, t] @ w + b`.

# %%
np.random.seed(231)
N, T, D, M = 2, 3, 4, 5
x = np.random.randn(N, T, D)
w = np.random.randn(D, M)
b = np.random.randn(M)
out, cache = temporal_affine_forward(x, w, b)
err = rel_error(out, np.einsum("ntd,dm->ntm", x, w) + b)
print(f"forward  relative error: {err:.2e}")
assert err < FORWARD_TOL, f"forward relative error {err:.2e} is above {FORWARD_TOL:.0e}"

dout = np.random.randn(*out.shape)
dx, dw, db = temporal_affine_backward(dout, cache)
numeric = {
    "dx": eval_numerical_gradient_array(lambda x_: temporal_affine_forward(x_, w, b)[0], x, dout),
    "dw": eval_numerical_gradient_array(lambda w_: temporal_affine_forward(x, w_, b)[0], w, dout),
    "db": eval_numerical_gradient_array(lambda b_: temporal_affine_forward(x, w, b_)[0], b, dout),
}
for name, analytic in (("dx", dx), ("dw", dw), ("db", db)):
    err = rel_error(analytic, numeric[name])
    print(f"{name:8s} relative error: {err:.2e}")
    assert err < LAYER_TOL, f"{name} relative error {err:.2e} is above {LAYER_TOL:.0e}"

# %% [markdown]
# ## Temporal softmax loss
#
# The loss is the softmax cross-entropy of the next word at every timestep, counted only where
# `mask` is true (not on `<NULL>` padding), summed over time and divided by the minibatch size N.
# With near-zero scores every word has probability 1/V, so the loss is about
# `log(V)` times the average number of unmasked steps per caption.

# %%
np.random.seed(231)
for N, T, V, p in ((100, 1, 10, 1.0), (100, 10, 10, 1.0), (5000, 10, 10, 0.1)):
    x = 0.001 * np.random.randn(N, T, V)
    y = np.random.randint(V, size=(N, T))
    mask = np.random.rand(N, T) <= p
    loss, _ = temporal_softmax_loss(x, y, mask)
    expected = T * p * np.log(V)
    print(f"N={N:4d} T={T:2d} V={V} p={p}: loss {loss:.4f}, expected about {expected:.4f}")
    assert abs(loss - expected) < 0.05 * expected, "the loss is far from log(V) per unmasked step"

N, T, V = 7, 8, 9
x = np.random.randn(N, T, V)
y = np.random.randint(V, size=(N, T))
mask = np.random.rand(N, T) > 0.5
loss, dx = temporal_softmax_loss(x, y, mask)
dx_num = eval_numerical_gradient(lambda x_: temporal_softmax_loss(x_, y, mask)[0], x, verbose=False)
err = rel_error(dx, dx_num)
print(f"dx       relative error: {err:.2e}")
assert err < LAYER_TOL, f"dx relative error {err:.2e} is above {LAYER_TOL:.0e}"

# %% [markdown]
# ## The captioning model
#
# `CaptioningRNN` projects the image features to the initial hidden state, embeds the caption's
# words, runs the vanilla RNN over them, maps every hidden state to word scores and takes the temporal
# softmax loss of predicting each next word. Its input is the caption without its last word and
# its target the caption without `<START>`.
#
# With every parameter set to a fixed ramp of values, the loss is a known number (the same check
# as the cs231n assignment, so any implementation of the same model gives it).

# %%
N, D, W, H = 10, 20, 30, 40
word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
V = len(word_to_idx)
T = 13

model = CaptioningRNN(word_to_idx, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type="rnn",
                      dtype=np.float64)
for name, param in model.params.items():
    model.params[name] = np.linspace(-1.4, 1.3, num=param.size).reshape(*param.shape)

features = np.linspace(-1.5, 0.3, num=N * D).reshape(N, D)
captions = (np.arange(N * T) % V).reshape(N, T)
loss, grads = model.loss(features, captions)
expected_loss = 9.83235591003
print(f"loss {loss:.11f}, expected {expected_loss:.11f}, difference {abs(loss - expected_loss):.1e}")
assert abs(loss - expected_loss) < 1e-9, "the model's loss differs from the expected value"

# %% [markdown]
# ### Gradient check of the whole model
#
# A tiny float64 model; every parameter's analytic gradient is compared with a central-difference
# estimate of the loss. The relative error is taken element by element, so it is only meaningful
# where the gradient is not tiny next to the rounding error of the estimate (about
# `1e-16 * loss / h`). Hence the parameters are replaced by random values of a moderate size first
# (at initialization the word vectors are `randn / 100`, which makes the gradient of `Wx` tiny too),
# and the step is `h = 1e-4`, whose truncation error (of order `h**2`) is still far below the
# threshold.

# %%
np.random.seed(231)
batch_size, timesteps = 2, 3
input_dim, wordvec_dim, hidden_dim = 4, 5, 6
word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
vocab_size = len(word_to_idx)
captions = np.random.randint(vocab_size, size=(batch_size, timesteps))
features = np.random.randn(batch_size, input_dim)

model = CaptioningRNN(word_to_idx, input_dim=input_dim, wordvec_dim=wordvec_dim, hidden_dim=hidden_dim,
                      cell_type="rnn", dtype=np.float64)
for name, param in model.params.items():
    model.params[name] = 0.5 * np.random.randn(*param.shape)
loss, grads = model.loss(features, captions)
for name in sorted(model.params):
    # eval_numerical_gradient perturbs model.params[name] in place; the lambda ignores its argument.
    grad_num = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], model.params[name],
                                       verbose=False, h=1e-4)
    err = rel_error(grad_num, grads[name])
    print(f"{name:8s} relative error: {err:.2e}")
    assert err < MODEL_TOL, f"{name} relative error {err:.2e} is above {MODEL_TOL:.0e}"

# %% [markdown]
# ## Overfit a small dataset
#
# With only 50 training captions a model this size should drive the training loss from about 50
# (`log V` for each of the 10 to 15 words of a caption) to near zero in 100 iterations: a quick
# test that the model, the solver and the optimizer work together. This is the classic call: it
# prints the classic iteration lines and nothing else (validation, the ETA and checkpoints are each
# switched on by their own option, as in the next section's `num_val_images`).

# %%
np.random.seed(231)
small_data = load_coco_data(base_dir=data_dir, max_train=50)

small_rnn_model = CaptioningRNN(
    cell_type="rnn",
    word_to_idx=data["word_to_idx"],
    input_dim=data["train_features"].shape[1],
    hidden_dim=512,
    wordvec_dim=256,
)
small_rnn_solver = CaptioningSolver(
    small_rnn_model, small_data,
    update_rule="adam",
    num_epochs=50,
    batch_size=25,
    optim_config={"learning_rate": 5e-3},
    lr_decay=0.95,
    verbose=True,
    print_every=10,
)
small_rnn_solver.train()

plt.figure(figsize=(6, 4))
plt.plot(small_rnn_solver.loss_history)
plt.xlabel("Iteration")
plt.ylabel("Loss")
plt.title("Training loss history (RNN, 50 captions)")
plt.show()
first_loss, final_loss = small_rnn_solver.loss_history[0], small_rnn_solver.loss_history[-1]
print(f"First loss: {first_loss:.4f}, final loss: {final_loss:.4f}")
assert final_loss < 0.05 * first_loss, "the model did not overfit 50 captions"

# %% [markdown]
# ## Sampling
#
# At test time the model starts from `<START>` and feeds back its own most likely word
# (`CaptioningRNN.sample`; `caption_features` returns the captions as strings). On training
# images the overfit model should reproduce the captions it memorized; on validation images,
# which it has never seen, it has learned nothing useful yet.

# %%
np.random.seed(231)
for split in ("train", "val"):
    captions, features, urls = sample_coco_minibatch(small_data, split=split, batch_size=4)
    generated = small_rnn_model.caption_features(features)
    references = [strip_framing(c) for c in decode_captions(captions, data["idx_to_word"])]
    images = [image_from_url(url, placeholder=True) for url in urls]
    print(f"{split}: generated (gen) and reference (ref) captions")
    caption_grid(images, generated, references, ncols=4)
    plt.show()

# %% [markdown]
# ## Scoring captions
#
# `evaluate_model` is the assignment's measure: unigram BLEU of each sampled caption against the
# one reference caption drawn with it, averaged over 1000 random minibatch entries per split.
# `score_captions` computes what papers report: corpus BLEU-1..4 and CIDEr-D, each candidate
# against *all* reference captions of its image (`score_model` captions a split's images and calls
# it). CIDEr-D runs from 0 to 10 on this scale.

# %%
np.random.seed(231)
bleu = evaluate_model(small_rnn_model, small_data)

references = {
    "img1": ["a large red circle", "a big red disk"],
    "img2": ["a small blue square above a green star", "a tiny blue box over a green star"],
    "img3": ["a black triangle to the left of a yellow diamond"],
}
candidates = {"img1": "a large red circle", "img2": "a small blue square",
              "img3": "a yellow diamond to the left of a black triangle"}
print("toy corpus:", {k: round(v, 3) for k, v in score_captions(references, candidates).items()})

for split in ("train", "val"):
    scores = score_model(small_rnn_model, small_data, split=split, num_images=500)
    print(f"{split:5s} (multi-reference):", {k: round(v, 3) for k, v in scores.items()})

# %% [markdown]
# ## Greedy decoding and beam search
#
# Greedy decoding takes the most likely word at every step, which need not give the most likely
# caption. Beam search keeps the `beam_size` best partial captions of each image and returns the
# best finished one; its log-probability is never below the greedy caption's (the greedy caption is
# always among its candidates). Every extra word multiplies in one more probability below 1, so
# ranking by log-probability favours short captions (in the extreme an empty one, `<END>` alone)
# when the model is unsure, as the overfit model is on validation images. `length_penalty=alpha`
# ranks by `log p / length**alpha` instead.

# %%
np.random.seed(231)
captions, features, urls = sample_coco_minibatch(small_data, split="val", batch_size=5)
greedy, greedy_logp = small_rnn_model.sample(features, return_log_probs=True)
beam, beam_logp = small_rnn_model.sample(features, beam_size=5, return_log_probs=True)
normed, normed_logp = small_rnn_model.sample(
    features, beam_size=5, length_penalty=1.0, return_log_probs=True)
rows = zip(decode_captions(greedy, data["idx_to_word"]), greedy_logp,
           decode_captions(beam, data["idx_to_word"]), beam_logp,
           decode_captions(normed, data["idx_to_word"]), normed_logp)
for g, g_logp, b, b_logp, n, n_logp in rows:
    print(f"greedy                 (log p {g_logp:6.2f}): {g}")
    print(f"beam 5                 (log p {b_logp:6.2f}): {b}")
    print(f"beam 5, length penalty (log p {n_logp:6.2f}): {n}\n")
assert np.all(beam_logp >= greedy_logp - 1e-6), "beam search found a less likely caption than greedy"

# %% [markdown]
# ## Train a good model
#
# Now the whole training set, with the solver's extras switched on. `num_val_images=200` validates
# after every epoch: the solver captions a fixed set of 200 val images, scores them with BLEU and
# CIDEr-D against all their references, prints an `(Epoch e / E)` line and keeps the parameters of
# the epoch with the best CIDEr (`solver.best_params`); `progress="eta"` ends each iteration line with
# the seconds per iteration and the time left. Adam with learning
# rate decay and gradient-norm clipping. On two CPU cores this takes a few minutes on the default
# shapes dataset; on COCO it trains on a 100,000-caption subset and takes longer.

# %%
if SMALL:
    sizes = dict(wordvec_dim=64, hidden_dim=64, num_epochs=2, max_train=500)
elif USING_COCO:
    sizes = dict(wordvec_dim=256, hidden_dim=512, num_epochs=2, max_train=100_000)
else:
    sizes = dict(wordvec_dim=256, hidden_dim=256, num_epochs=6, max_train=None)
print(sizes)

np.random.seed(0)
train_data = data if sizes["max_train"] is None else load_coco_data(base_dir=data_dir,
                                                                    max_train=sizes["max_train"])
rnn_model = CaptioningRNN(
    cell_type="rnn",
    word_to_idx=data["word_to_idx"],
    input_dim=data["train_features"].shape[1],
    hidden_dim=sizes["hidden_dim"],
    wordvec_dim=sizes["wordvec_dim"],
)
rnn_solver = CaptioningSolver(
    rnn_model, train_data,
    update_rule="adam",
    optim_config={"learning_rate": 5e-3},
    lr_decay=0.9,
    batch_size=100,
    num_epochs=sizes["num_epochs"],
    grad_clip=5.0,
    num_val_images=200,
    progress="eta",
    seed=0,
    print_every=100,
)
start = time.time()
rnn_solver.train()
print(f"trained in {time.time() - start:.0f} s; best val CIDEr {rnn_solver.best_val_cider:.3f}")
rnn_model.params.update(rnn_solver.best_params)

plot_training_curves(rnn_solver.loss_history, rnn_solver.val_history,
                     title="RNN captioning model")
plt.show()

# %% [markdown]
# ### Scores and captions of the trained model
#
# The classic BLEU first, then the multi-reference scores on the validation images with greedy
# decoding and with beam search, then a look at some validation images.

# %%
np.random.seed(231)
evaluate_model(rnn_model, data)

num_images = min(1000, len(references_from_data(data, "val")))
print(f"\nval, {num_images} images, each against all its captions:")
for beam_size in (1, 3):
    scores = score_model(rnn_model, data, split="val", num_images=num_images, beam_size=beam_size)
    name = "greedy" if beam_size == 1 else f"beam {beam_size}"
    print(f"  {name:7s}" + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))

val_references = references_from_data(data, "val")
image_ids = list(val_references)[:8]
generated = rnn_model.caption_features(data["val_features"][image_ids])
images = [image_from_url(data["val_urls"][i], placeholder=True) for i in image_ids]
caption_grid(images, generated, [strip_framing(val_references[i][0]) for i in image_ids], ncols=4)
plt.show()
