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
# # Image captioning with a Transformer
#
# The recurrent models of `RNN_Captioning.ipynb` and `LSTM_Captioning.ipynb` read a caption one word
# at a time. A Transformer decoder lets every position look at all earlier positions at once through
# *attention*, and at the image through *cross-attention*. This notebook builds cs231n's
# `CaptioningTransformer` from layers written in numpy, each with a hand-written backward pass:
# layer normalization, scaled dot-product attention with a mask, multi-head attention, sinusoidal
# positions, dropout and the feed-forward block (`cs231n/transformer_layers.py`).
#
# The order: check every layer numerically; see the causal mask stop attention to the future; check
# the whole model's gradient; overfit 50 captions; sample; train on the shapes dataset; and look at
# the attention weights over the words of a generated caption.
#
# **Data.** The synthetic *shapes* dataset (`cs231n.data.shapes`), or COCO when `CS231N_COCO_DIR`
# points at it. **Checks** print `relative error: ...` and `assert` it is below a threshold.
# `CS231N_NOTEBOOK_SMALL=1` shrinks the slow parts (tests/test_notebooks.py sets it).

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from cs231n.captioning_solver import CaptioningSolver
from cs231n.classifiers.transformer import CaptioningTransformer
from cs231n.coco_utils import decode_captions, load_coco_data, strip_framing
from cs231n.data.shapes import ensure_shapes_dataset
from cs231n.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from cs231n.metrics import score_model
from cs231n.transformer_layers import (
    dropout_backward,
    dropout_forward,
    feedforward_backward,
    feedforward_forward,
    layernorm_backward,
    layernorm_forward,
    multihead_attention_backward,
    multihead_attention_forward,
    positional_encoding,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from cs231n.vis import plot_training_curves

# %matplotlib inline
plt.rcParams["figure.dpi"] = 80  # modest figures keep the committed notebook small

SMALL = os.environ.get("CS231N_NOTEBOOK_SMALL", "0") not in ("", "0")
LAYER_TOL = 1e-7   # a layer's analytic gradient against the numerical one (float64)
MODEL_TOL = 5e-6   # the whole model's gradient (float64, dropout off)
print(f"small mode: {SMALL}")


def check(name, analytic, numeric, tol=LAYER_TOL):
    err = rel_error(analytic, numeric)
    print(f"{name:>10} relative error: {err:.2e}")
    assert err < tol, f"{name}: {err:.2e} >= {tol}"


# %% [markdown]
# ## Data

# %%
if os.environ.get("CS231N_COCO_DIR"):
    data_dir = None  # load_coco_data reads $CS231N_COCO_DIR
    print("Using the COCO captioning release in", os.environ["CS231N_COCO_DIR"])
else:
    # CS231N_SHAPES_SIZE=tiny (the tests) picks a 60-image version of the dataset.
    data_dir = ensure_shapes_dataset(size=os.environ.get("CS231N_SHAPES_SIZE", "default"))
    print("Using the synthetic shapes dataset in", data_dir.name)
data = load_coco_data(base_dir=data_dir)
for k, v in data.items():
    if hasattr(v, "shape"):
        print(f"{k:20} {type(v).__name__:8} {v.dtype} {v.shape}")
print("vocabulary:", len(data["word_to_idx"]), "words")

# %% [markdown]
# ## Layer normalization
#
# Each vector along the last axis is shifted to mean 0 and scaled to variance 1, then multiplied by
# `gamma` and shifted by `beta`. Unlike batch normalization it needs no batch statistics, so it works
# the same in training and at test time, and on one caption at a time while sampling.

# %%
rng = np.random.RandomState(231)
x = rng.randn(4, 5, 6) * 3 + 7
out, _ = layernorm_forward(x, np.ones(6), np.zeros(6), {})
print("means per vector:", np.round(out.mean(-1)[0], 8), " stds:", np.round(out.std(-1)[0], 5))

gamma, beta, dout = rng.randn(6), rng.randn(6), rng.randn(4, 5, 6)
_, cache = layernorm_forward(x, gamma, beta, {})
dx, dgamma, dbeta = layernorm_backward(dout, cache)
check("dx", dx, eval_numerical_gradient_array(lambda a: layernorm_forward(a, gamma, beta, {})[0], x, dout))
check("dgamma", dgamma, eval_numerical_gradient_array(lambda g: layernorm_forward(x, g, beta, {})[0], gamma, dout))
check("dbeta", dbeta, eval_numerical_gradient_array(lambda b: layernorm_forward(x, gamma, b, {})[0], beta, dout))

# %% [markdown]
# ## Scaled dot-product attention and its mask
#
# Query i's output is a weighted mean of the values; the weights are the softmax over keys j of
# `q_i . k_j / sqrt(d)`. A mask with `mask[i, j] == 0` forbids query i to look at key j (its weight is
# exactly 0). The captioning model uses the *causal* mask `tril(ones(T, T))`: position t sees only
# positions <= t, so predicting word t+1 cannot peek at it.

# %%
N, h, T, d = 2, 3, 5, 4
q, k, v = rng.randn(N, h, T, d), rng.randn(N, h, T, d), rng.randn(N, h, T, d)
causal = np.tril(np.ones((T, T)))
out, cache = scaled_dot_product_attention_forward(q, k, v, causal)
manual = np.zeros_like(out)
for i in range(T):  # by hand: softmax over the allowed keys only
    s = q[:, :, i:i + 1] @ k[:, :, :i + 1].swapaxes(-1, -2) / np.sqrt(d)
    w = np.exp(s - s.max(-1, keepdims=True))
    manual[:, :, i:i + 1] = (w / w.sum(-1, keepdims=True)) @ v[:, :, :i + 1]
print(f"forward vs a loop, relative error: {rel_error(out, manual):.2e}")
assert rel_error(out, manual) < 1e-10

# Changing the keys and values after position t leaves the outputs at positions <= t unchanged.
k2, v2 = k.copy(), v.copy()
k2[:, :, 3:], v2[:, :, 3:] = rng.randn(N, h, 2, d), rng.randn(N, h, 2, d)
out2, _ = scaled_dot_product_attention_forward(q, k2, v2, causal)
print("largest change at positions 0..2:", np.abs(out2[:, :, :3] - out[:, :, :3]).max(),
      "  at positions 3..4:", round(float(np.abs(out2[:, :, 3:] - out[:, :, 3:]).max()), 3))
assert np.array_equal(out2[:, :, :3], out[:, :, :3])

fig, axes = plt.subplots(1, 2, figsize=(7, 3))
axes[0].imshow(causal, cmap="gray")
axes[0].set_title("mask (white: may attend)")
axes[1].imshow(cache.probs[0, 0], cmap="viridis")
axes[1].set_title("attention weights, head 0")
for ax in axes:
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
plt.tight_layout()
plt.show()

dout = rng.randn(N, h, T, d)
dq, dk, dv = scaled_dot_product_attention_backward(dout, cache)
att = lambda q_, k_, v_: scaled_dot_product_attention_forward(q_, k_, v_, causal)[0]  # noqa: E731
check("dq", dq, eval_numerical_gradient_array(lambda a: att(a, k, v), q, dout))
check("dk", dk, eval_numerical_gradient_array(lambda a: att(q, a, v), k, dout))
check("dv", dv, eval_numerical_gradient_array(lambda a: att(q, k, a), v, dout))

# %% [markdown]
# The softmax's backward is `dS = P * (dP - sum(dP * P))` row by row, O(S T) work; no (T, T) Jacobian
# is formed. A query whose mask row is all zero has nothing to attend to, which is an error, not NaN:

# %%
try:
    scaled_dot_product_attention_forward(q, k, v, np.zeros((T, T)))
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# ## Multi-head attention
#
# The input is projected to queries, keys and values for h heads at once (one matrix product each,
# heads side by side in the columns), every head attends, the heads are concatenated and projected
# back. Self-attention passes the same array as query, key and value; its gradient is the sum of the
# three.

# %%
N, S, E, h = 2, 4, 6, 2
xq = rng.randn(N, S, E)
weights = [rng.randn(E, E) * 0.4 if i % 2 == 0 else rng.randn(E) * 0.1 for i in range(8)]
mask = np.tril(np.ones((S, S)))
out, cache = multihead_attention_forward(xq, xq, xq, *weights, h, mask=mask)
dout = rng.randn(N, S, E)
grads = multihead_attention_backward(dout, cache)
mha = lambda x_, w_, i: multihead_attention_forward(  # noqa: E731
    x_, x_, x_, *[w_ if j == i else w for j, w in enumerate(weights)], h, mask=mask)[0]
check("dx", grads[0] + grads[1] + grads[2],
      eval_numerical_gradient_array(lambda a: mha(a, None, -1), xq, dout))
for i, name in enumerate(["dWq", "dbq", "dWk", "dbk", "dWv", "dbv", "dWo", "dbo"]):
    if name == "dbk":  # a key bias shifts a whole row of scores, which the softmax ignores: exactly 0
        print(f"{name:>10} largest entry: {np.abs(grads[3 + i]).max():.1e} (zero in exact arithmetic)")
        continue
    check(name, grads[3 + i], eval_numerical_gradient_array(lambda a: mha(xq, a, i), weights[i], dout))

# %% [markdown]
# ## Positions, dropout and the feed-forward block
#
# Attention ignores order, so the position of each word is added to its vector:
# `P[t, 2i] = sin(t / 10000^(2i/D))`, `P[t, 2i+1] = cos(t / 10000^(2i/D))`, waves of lengths from
# 2 pi to 10000 * 2 pi. Dropout's `p` is the probability of **dropping** a unit (PyTorch's convention).

# %%
P = positional_encoding(50, 64)
plt.figure(figsize=(6, 2.5))
plt.imshow(P.T, aspect="auto", cmap="RdBu")
plt.xlabel("position t")
plt.ylabel("dimension")
plt.title("sinusoidal positional encoding")
plt.colorbar()
plt.show()

xd = np.ones((500, 500))
dropped, _ = dropout_forward(xd, p=0.1, train=True, rng=0)
print(f"dropout p=0.1: fraction dropped {np.mean(dropped == 0):.3f}, kept units scaled to {dropped.max():.4f}, "
      f"test mode is the identity: {dropout_forward(xd, 0.1, train=False)[0] is xd}")
xs, dout = rng.randn(3, 4), rng.randn(3, 4)
_, keep = dropout_forward(xs, 0.3, True, rng=1)
check("dropout dx", dropout_backward(dout, keep),
      eval_numerical_gradient_array(lambda a: dropout_forward(a, 0.3, True, rng=1)[0], xs, dout))

xf = rng.randn(2, 3, 4)
ffn_w = [rng.randn(4, 8) * 0.5, rng.randn(8) * 0.3, rng.randn(8, 4) * 0.5, rng.randn(4) * 0.3]
dout = rng.randn(2, 3, 4)
for activation in ("relu", "gelu"):
    _, cache = feedforward_forward(xf, *ffn_w, activation)
    fgrads = feedforward_backward(dout, cache)
    args = [xf] + ffn_w
    for i, name in enumerate(["dx", "dW1", "db1", "dW2", "db2"]):
        def f(a, i=i):
            call = list(args)
            call[i] = a
            return feedforward_forward(*call, activation)[0]
        check(f"{activation} {name}", fgrads[i], eval_numerical_gradient_array(f, args[i], dout))

# %% [markdown]
# ## The captioning Transformer
#
# The image feature is projected to a single *memory* token. Each caption word is embedded, its
# position added, and `num_layers` decoder layers each apply masked self-attention, cross-attention to
# the memory and a ReLU feed-forward block, every one as `x = layernorm(x + dropout(f(x)))`. The loss
# is CaptioningRNN's: softmax cross-entropy of each next word, `<NULL>` targets masked out, summed over
# time and divided by N. Dropout is on while `model.training` is True; for the gradient check it is off.

# %%
np.random.seed(231)
small_vocab = {w: i for i, w in enumerate(["<NULL>", "<START>", "<END>", "a", "red", "square", "circle"])}
model = CaptioningTransformer(small_vocab, input_dim=5, wordvec_dim=6, num_heads=2, num_layers=2,
                              max_length=10, dim_feedforward=8, dtype=np.float64)
for name in model.params:  # larger weights than the 0.02 initialization, so every path matters
    model.params[name] = model.params[name] + 0.3 * np.random.randn(*model.params[name].shape)
model.training = False
features = np.random.randn(2, 5)
captions = np.array([[1, 3, 4, 5, 2, 0], [1, 3, 6, 2, 0, 0]])
loss, grads = model.loss(features, captions)
print(f"loss: {loss:.6f} with {len(model.params)} parameter arrays")
worst, key_bias = 0.0, 0.0
# Step h = 1e-4: the loss (about 7.5) is computed to about 1e-15, so with the default 1e-5 the difference
# quotient alone is off by about 1e-10, a relative error of 1e-5 on the smallest gradients (about 1e-5);
# the function is smooth enough that the larger step's own error is far smaller.
for name in sorted(model.params):
    numeric = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], model.params[name],
                                      verbose=False, h=1e-4)
    if name.endswith("_bk"):  # key biases: zero gradient (see multi-head attention above)
        key_bias = max(key_bias, np.abs(grads[name]).max(), np.abs(numeric).max())
    else:
        worst = max(worst, rel_error(grads[name], numeric))
print(f"whole model, worst parameter relative error: {worst:.2e} (key-bias gradients at most {key_bias:.0e})")
assert worst < MODEL_TOL

# %% [markdown]
# ## Overfit 50 captions
#
# One caption of each of 50 images (an image's five captions disagree, so they cannot all be fitted).
# cs231n's setting: 2 heads, 2 layers, word vectors 256, Adam at 1e-3, batch 25, 100 epochs, dropout
# 0.1 on. (Small mode trains a narrower model for fewer epochs.)

# %%
np.random.seed(231)
n_small = 50
first = np.unique(data["train_image_idxs"], return_index=True)[1][:n_small]  # one caption per image
small_data = dict(data, train_captions=data["train_captions"][first], train_image_idxs=data["train_image_idxs"][first])
overfit = CaptioningTransformer(data["word_to_idx"], data["train_features"].shape[1], 64 if SMALL else 256,
                                num_heads=2, num_layers=2, max_length=30,
                                dim_feedforward=256 if SMALL else 2048)
solver = CaptioningSolver(overfit, small_data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                          num_epochs=40 if SMALL else 100, batch_size=25, num_val_images=0,
                          print_every=10 ** 6, verbose=False, seed=0)
t0 = time.time()
solver.train()
overfit.training = False
final = overfit.loss(data["train_features"][small_data["train_image_idxs"]], small_data["train_captions"])[0]
words = np.count_nonzero(small_data["train_captions"][:, 1:] != overfit._null)
print(f"trained in {time.time() - t0:.0f} s; final loss {final:.4f} per caption, "
      f"{final * n_small / words:.4f} per word")
plt.figure(figsize=(5, 3))
plt.plot(solver.loss_history)
plt.xlabel("iteration")
plt.ylabel("training loss")
plt.title("overfitting 50 captions")
plt.show()
if not SMALL:
    assert final * n_small / words < 0.03

# %% [markdown]
# Sampling from the overfit model reproduces the training captions it memorized (greedy decoding,
# which keeps each layer's keys and values so word t costs O(t)):

# %%
idx = small_data["train_image_idxs"][:4]
sampled = overfit.sample(data["train_features"][idx], max_length=20)
for gt, cap in zip(decode_captions(small_data["train_captions"][:4], data["idx_to_word"]),
                   decode_captions(sampled, data["idx_to_word"])):
    print(f"truth:   {strip_framing(gt)}\nsampled: {strip_framing(cap)}\n")

# %% [markdown]
# ## Train on the shapes dataset
#
# A Transformer of cs231n's size (W = 256, 4 heads, 2 layers, feed-forward 2048) with Adam at 1e-3.
# The solver scores the val split after every epoch with the model's dropout off.

# %%
np.random.seed(0)
model = CaptioningTransformer(data["word_to_idx"], data["train_features"].shape[1], 64 if SMALL else 256,
                              num_heads=4, num_layers=2, dim_feedforward=256 if SMALL else 2048)
train_data = dict(data)
if not SMALL:  # a fifth of the captions keeps the notebook's run to minutes on a laptop
    keep = np.random.RandomState(0).choice(len(data["train_captions"]), 6000, replace=False)
    train_data["train_captions"] = data["train_captions"][keep]
    train_data["train_image_idxs"] = data["train_image_idxs"][keep]
solver = CaptioningSolver(model, train_data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                          lr_decay=0.7, num_epochs=2 if SMALL else 3, batch_size=100, grad_clip=5.0,
                          num_val_images=50 if SMALL else 200, print_every=10 ** 6, verbose=True, seed=0)
t0 = time.time()
solver.train()
print(f"trained in {time.time() - t0:.0f} s")
model.params.update(solver.best_params or {})
model.training = False
plot_training_curves(solver.loss_history, solver.val_history)
plt.show()
scores = score_model(model, data, split="val", num_images=100 if SMALL else None)
print("val (greedy):", "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
beam = score_model(model, data, split="val", num_images=100 if SMALL else 300, beam_size=3)
print("val (beam 3, first images):", "  ".join(f"{k} {v:.3f}" for k, v in beam.items()))

# %% [markdown]
# ## Attention over the words of a caption
#
# `forward(..., return_attention=True)` returns every layer's attention weights. Row t of a
# self-attention map shows which earlier words position t drew on when predicting word t+1; the
# upper triangle is zero (the causal mask).

# %%
feat = data["val_features"][:1]
caption = model.sample(feat, max_length=20)[0]
words = ["<START>"] + [data["idx_to_word"][int(i)] for i in caption]
if "<END>" in words:
    words = words[:words.index("<END>") + 1]
inputs = np.array([[data["word_to_idx"][w] for w in words[:-1]]])
_, attention = model.forward(feat, inputs, return_attention=True)
print("caption:", " ".join(words[1:]))
fig, axes = plt.subplots(model.num_layers, model.num_heads, figsize=(2.6 * model.num_heads, 2.6 * model.num_layers))
for l in range(model.num_layers):
    for head in range(model.num_heads):
        ax = axes[l, head]
        ax.imshow(attention[l]["self"][0, head], cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(words) - 1))
        ax.set_xticklabels(words[:-1], rotation=90, fontsize=7)
        ax.set_yticks(range(len(words) - 1))
        ax.set_yticklabels(words[1:], fontsize=7)
        ax.set_title(f"layer {l}, head {head}", fontsize=8)
plt.tight_layout()
plt.show()
