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
# # Captions that look: attention over image regions
#
# The models of `RNN_Captioning`, `LSTM_Captioning` and `Transformer_Captioning` see an image as ONE
# vector. When an image shows a purple square above an orange diamond, that vector holds "purple",
# "orange", "square" and "diamond" somewhere, and the decoder must untangle which belongs to which; the
# LSTM's most common mistake on the shapes dataset is exactly that, two objects' shapes swapped.
#
# *Soft attention* (Xu et al. 2015, "Show, Attend and Tell"; the attention LSTM of EECS 498-007's
# assignment 5) gives the decoder R region vectors instead, and at every word lets it choose where to
# look: the hidden state scores each region, a softmax turns the scores into weights, and the weighted
# mean of the regions, the *context*, enters every gate of the LSTM through its own weight matrix.
#
# The order: check the attention layer, the attention-LSTM step and the whole sequence numerically
# (each with a hand-written backward pass in `cs231n/rnn_layers.py`); check both region models'
# gradients (`CaptioningRNN(cell_type='attention')` and `CaptioningTransformer(regions=True)`); train
# the attention LSTM on the shapes dataset; and look at where it looks, word by word, in right and in
# wrong captions.
#
# **Data.** The synthetic *shapes* dataset (`cs231n.data.shapes`) with its region features: the whole
# image and each object, one region each (R = 4). **Checks** print `relative error: ...` and `assert`
# it is below a threshold. `CS231N_NOTEBOOK_SMALL=1` shrinks the slow parts (tests/test_notebooks.py
# sets it).

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from cs231n.captioning_solver import CaptioningSolver
from cs231n.classifiers.rnn import CaptioningRNN
from cs231n.classifiers.transformer import CaptioningTransformer
from cs231n.coco_utils import load_coco_data, with_regions
from cs231n.data.shapes import ensure_shapes_dataset, judge_caption, load_scenes
from cs231n.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
from cs231n.image_utils import image_from_url
from cs231n.metrics import score_model
from cs231n.rnn_layers import (
    attention_backward,
    attention_forward,
    lstm_attention_backward,
    lstm_attention_forward,
    lstm_attention_step_backward,
    lstm_attention_step_forward,
)
from cs231n.vis import attention_maps, plot_training_curves

# %matplotlib inline
plt.rcParams["figure.dpi"] = 80  # modest figures keep the committed notebook small

SMALL = os.environ.get("CS231N_NOTEBOOK_SMALL", "0") not in ("", "0")
LAYER_TOL = 1e-7   # a layer's analytic gradient against the numerical one (float64)
MODEL_TOL = 5e-6   # a whole model's gradient (float64)
print(f"small mode: {SMALL}")


def check(name, analytic, numeric, tol=LAYER_TOL):
    err = rel_error(analytic, numeric)
    print(f"{name:>10} relative error: {err:.2e}")
    assert err < tol, f"{name}: {err:.2e} >= {tol}"


# %% [markdown]
# ## Data: region features
#
# `load_coco_data(..., regions=True)` adds `train_regions` and `val_regions`, (images, R, D): for the
# shapes dataset R = 4 regions of D = 64 values (56 PCA values of the region's pixels, which region it
# is, and its box), and `*_region_boxes`, each region's box as fractions of the image, for drawing.
# `with_regions(data)` puts the regions where the solver and the scores read features.

# %%
# CS231N_SHAPES_SIZE=tiny (the tests) picks a 60-image version of the dataset.
data_dir = ensure_shapes_dataset(size=os.environ.get("CS231N_SHAPES_SIZE", "default"))
print("Using the synthetic shapes dataset in", data_dir.name)
data = load_coco_data(base_dir=data_dir, regions=True)
for k, v in data.items():
    if hasattr(v, "shape"):
        print(f"{k:20} {type(v).__name__:8} {v.dtype} {v.shape}")
print("boxes of val image 0 (whole image, then each object; zeros: no object):")
print(np.round(data["val_region_boxes"][0], 2))

# %% [markdown]
# ## Attention of a hidden state over regions
#
# With the regions projected to the hidden size, `A` (N, R, H), and the hidden state `h` (N, H):
# `scores = A h / sqrt(H)`, `weights = softmax(scores)` over the R regions, `attn = sum_r weights_r A_r`.
# The backward pass goes through the weighted mean (to the weights and to `A`), the softmax
# (`dS = P * (dP - sum(dP * P))`) and the scores (to `h` and again to `A`).

# %%
rng = np.random.RandomState(498)
N, R, H = 3, 4, 5
prev_h, A = rng.randn(N, H), rng.randn(N, R, H)
attn, cache = attention_forward(prev_h, A)
weights = cache[2]
print("weights (rows sum to 1):\n", np.round(weights, 3))
expected = np.einsum("nr,nrh->nh", weights, A)
check("attn", attn, expected, 1e-12)

dattn = rng.randn(N, H)
dprev_h, dA = attention_backward(dattn, cache)
check("dprev_h", dprev_h, eval_numerical_gradient_array(lambda h: attention_forward(h, A)[0], prev_h, dattn))
check("dA", dA, eval_numerical_gradient_array(lambda a: attention_forward(prev_h, a)[0], A, dattn))

# %% [markdown]
# ## One step of the attention LSTM
#
# The LSTM of `LSTM_Captioning` whose four gate pre-activations also add `attn Wattn`.

# %%
D = 6
x, prev_c = rng.randn(N, D), rng.randn(N, H)
Wx, Wh, Wattn, b = (0.3 * rng.randn(*shape) for shape in ((D, 4 * H), (H, 4 * H), (H, 4 * H), (4 * H,)))
next_h, next_c, cache = lstm_attention_step_forward(x, prev_h, prev_c, attn, Wx, Wh, Wattn, b)
dnext_h, dnext_c = rng.randn(N, H), rng.randn(N, H)
grads = lstm_attention_step_backward(dnext_h, dnext_c, cache)
inputs = [x, prev_h, prev_c, attn, Wx, Wh, Wattn, b]
for k, name in enumerate(["dx", "dprev_h", "dprev_c", "dattn", "dWx", "dWh", "dWattn", "db"]):
    def step(value, k=k):
        args = list(inputs)
        args[k] = value
        h, c, _ = lstm_attention_step_forward(*args)
        return h, c
    numeric = (eval_numerical_gradient_array(lambda v: step(v)[0], inputs[k], dnext_h)
               + eval_numerical_gradient_array(lambda v: step(v)[1], inputs[k], dnext_c))
    check(name, grads[k], numeric)

# %% [markdown]
# ## The whole sequence
#
# The initial hidden and cell states are the mean region; at every step the context is recomputed from
# the previous hidden state, so the model can look somewhere else for every word.

# %%
T = 4
xs = rng.randn(N, T, D)
h, cache = lstm_attention_forward(xs, A, Wx, Wh, Wattn, b)
dh = rng.randn(*h.shape)
grads = lstm_attention_backward(dh, cache)
inputs = [xs, A, Wx, Wh, Wattn, b]
for k, name in enumerate(["dx", "dA", "dWx", "dWh", "dWattn", "db"]):
    def run(value, k=k):
        args = list(inputs)
        args[k] = value
        return lstm_attention_forward(*args)[0]
    check(name, grads[k], eval_numerical_gradient_array(run, inputs[k], dh))

# %% [markdown]
# ## Both region models' gradients
#
# `CaptioningRNN(cell_type='attention')` projects the regions to `A = features W_proj + b_proj` and runs
# the attention LSTM; `CaptioningTransformer(regions=True)` makes each region one memory token that
# cross-attention looks over. Every parameter's gradient, in float64 on a tiny model, against central
# differences, with larger-than-default weights so that every path carries a visible gradient. (A
# Transformer's key biases get an exactly-zero gradient: adding `q.bk` to every score
# alike does not change a softmax, so their numerical "gradient" is rounding noise; they are skipped.)

# %%
word_to_idx = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "red": 4, "circle": 5, "square": 6}
features = rng.randn(2, 3, 4)  # 2 images, 3 regions of 4 values
captions = np.array([[1, 3, 4, 5, 2, 0], [1, 3, 6, 2, 0, 0]])

np.random.seed(231)
models = {
    "attention LSTM": CaptioningRNN(word_to_idx, input_dim=4, wordvec_dim=5, hidden_dim=6,
                                    cell_type="attention", dtype=np.float64),
    "Transformer, regions": CaptioningTransformer(word_to_idx, 4, 6, num_heads=2, num_layers=1,
                                                  dim_feedforward=8, dropout=0.0, dtype=np.float64,
                                                  regions=True),
}
for title, model in models.items():
    print(title)
    for name, value in model.params.items():
        model.params[name] = value + 0.3 * rng.randn(*value.shape)
    loss, grads = model.loss(features, captions)
    for name in sorted(model.params):
        if name.endswith("_bk"):
            continue
        numeric = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], model.params[name],
                                          verbose=False)
        check(name, grads[name], numeric, MODEL_TOL)

# %% [markdown]
# ## Training the attention LSTM on shapes
#
# The settings of the default job (`python -m cs231n train`): hidden size 256, word vectors 128, Adam
# at 5e-3 decayed by 0.8 per epoch, 8 epochs, batches of 100 captions. The solver keeps the epoch with
# the best val CIDEr.

# %%
region_data = with_regions(data)
np.random.seed(0)
model = CaptioningRNN(region_data["word_to_idx"], input_dim=region_data["train_features"].shape[2],
                      wordvec_dim=32 if SMALL else 128, hidden_dim=32 if SMALL else 256, cell_type="attention")
solver = CaptioningSolver(model, region_data, update_rule="adam", optim_config={"learning_rate": 5e-3},
                          lr_decay=0.8, batch_size=50 if SMALL else 100, num_epochs=2 if SMALL else 8,
                          print_every=10 ** 9, verbose=False, seed=0, grad_clip=5.0,
                          num_val_images=20 if SMALL else 200)
t0 = time.time()
solver.train()
print(f"trained {solver.epoch} epochs in {time.time() - t0:.0f} s")
if solver.best_params:
    model.params.update(solver.best_params)
plot_training_curves(solver.loss_history, solver.val_history, title="attention LSTM on shapes")
plt.show()

# %% [markdown]
# ## Scores on val
#
# BLEU and CIDEr against the five references of each image, and the *scene accuracy*: each caption
# read back with the dataset's grammar and checked against what the image shows. "misbound" counts the
# captions that give an object another object's color, shape or size, the mistake attention should cure.

# %%
from cs231n.data.shapes.accuracy import format_scene_accuracy, judge_dataset_captions  # noqa: E402

scores, generated = score_model(model, region_data, split="val", return_captions=True)
print("  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
scene, verdicts = judge_dataset_captions(data_dir, "val", generated)
print(format_scene_accuracy(scene))

# %% [markdown]
# ## Where the model looks, word by word
#
# `sample(..., return_attention=True)` also returns the weights with which each word was chosen. Each
# panel below is one generated word: the image under a heat map of the weights (every pixel gets the
# summed weight of the regions covering it: the whole-image region covers all of them, an object's
# region its box), each region's box drawn as thick as its weight. First captions that are entirely
# right, then wrong ones (the wrong words are what the grammar check marks).

# %%
val_ids = np.arange(min(200, region_data["val_features"].shape[0]))
caps, weights = model.sample(region_data["val_features"][val_ids], return_attention=True)
scenes = load_scenes(data_dir, "val")
words = [[model.idx_to_word[int(i)] for i in row if int(i) != model._null] for row in caps]
verdict = [judge_caption(" ".join(w for w in ws if w != "<END>"), scenes[i]) for i, ws in zip(val_ids, words)]
right = [k for k, v in enumerate(verdict) if v["right"]][:2]
wrong = [k for k, v in enumerate(verdict) if not v["right"]][:2]
print(f"{sum(v['right'] for v in verdict)} of {len(verdict)} captions entirely right; showing {right} and {wrong}")


def show(ids, title):
    if not ids:
        print(f"no {title} captions to show")
        return
    images = [image_from_url(region_data["val_urls"][val_ids[k]]) for k in ids]
    fig = attention_maps(images, [words[k] for k in ids], [weights[k, :len(words[k])] for k in ids],
                         data["val_region_boxes"][val_ids[ids]])
    fig.suptitle(title, y=1.02)
    for k in ids:
        print(f"{title}: {' '.join(words[k])}")
    plt.show()


show(right, "right")
show(wrong, "wrong")

# %% [markdown]
# In the right captions the weight moves to the object being named as its color and shape words come,
# and to the whole-image region for the words that place the objects ("to the left of", "above"). In the
# wrong ones, look at where the wrong word was chosen: often the weight was split between two objects.
