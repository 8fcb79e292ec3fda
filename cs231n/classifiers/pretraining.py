"""Masked-word pre-training of a sentence classifier's Transformer encoder on unlabelled rows.

Before it learns to judge sentences, :func:`masked_word_pretrain` teaches a
:class:`cs231n.classifiers.classification_transformer.ClassificationTransformer` to fill in words: in
each minibatch a share ``mask_prob`` of the words (never CLS or PAD) is replaced by UNK, the encoder
reads the rows (:meth:`ClassificationTransformer.encode`), and a softmax layer over the vocabulary
(``W_mlm`` (H, V), ``b_mlm`` (V,), discarded afterwards) predicts the original word at those
positions; the loss is the mean cross-entropy over the masked positions, minimised with the
project's Adam for the embeddings and every encoder layer (the classifier's ``W_final``, ``b_final``
are untouched). No labels are read.

Letters: N sentences, T positions, H hidden size, V vocabulary size, M masked positions.
"""
import numpy as np

from cs231n.backend import get_array_module, to_numpy
from cs231n.rnn_layers import temporal_softmax_loss
from cs231n.optim import adam


def masked_word_loss(model, inputs, masked, head, training=True):
    """Loss and gradients of masked-word prediction on one batch.

    Inputs:
    - model: a ClassificationTransformer.
    - inputs: (N, T) int word indices, the original rows.
    - masked: (N, T) bool, the positions to hide (replaced by UNK) and predict; at least one.
    - head: dict with 'W_mlm' (H, V) and 'b_mlm' (V,).

    Returns (loss, grads): grads for the model's encoder parameters and for 'W_mlm', 'b_mlm'.
    """
    xp = get_array_module(inputs)
    hidden_in = xp.where(masked, model.word_to_ix["UNK"], inputs)
    x, _, cache = model.encode(hidden_in, training)                     # (N, T', H)
    Tp = x.shape[1]
    where = masked[:, :Tp]                                               # the masked positions all lie before T'
    h = x[where]                                                         # (M, H)
    scores = h @ head["W_mlm"] + head["b_mlm"]                           # (M, V)
    M = scores.shape[0]
    loss, dscores = temporal_softmax_loss(scores[None], inputs[:, :Tp][where][None], xp.ones((1, M), dtype=bool))
    loss, dscores = float(loss) / M, dscores[0] / M                      # the mean over the M positions
    grads = {"W_mlm": h.T @ dscores, "b_mlm": dscores.sum(axis=0)}
    dx = xp.zeros_like(x)
    dx[where] = dscores @ head["W_mlm"].T
    grads.update(model.encode_backward(dx, cache))
    return loss, grads


def masked_word_pretrain(model, inputs, epochs=5, batch_size=32, learning_rate=1e-3, mask_prob=0.15, seed=0):
    """Pre-train ``model``'s encoder on the rows ``inputs`` (module docstring); return the mean loss of
    each epoch. The model's parameters are updated in place; its classifier head is left as it was."""
    fn = "masked_word_pretrain"
    inputs = model.check_inputs(fn, inputs)
    if not 0 < mask_prob < 1:
        raise ValueError(f"{fn}: mask_prob must be in (0, 1), got {mask_prob!r}")
    if "UNK" not in model.word_to_ix:
        raise ValueError(f"{fn}: the vocabulary needs an 'UNK' word to mask with")
    rng = np.random.default_rng(seed)
    H, V = model.params["W_embed"].shape[1], model.vocab_size
    head = {"W_mlm": (rng.standard_normal((H, V)) / np.sqrt(H)).astype(model.dtype),
            "b_mlm": np.zeros(V, dtype=model.dtype)}
    words = ~np.isin(to_numpy(inputs), [i for i in (model.cls_index, model.pad_index) if i is not None])
    configs = {}
    history = []
    N = inputs.shape[0]
    for _ in range(epochs):
        order = rng.permutation(N)
        losses = []
        for lo in range(0, N, batch_size):
            idx = order[lo:lo + batch_size]
            masked = words[idx] & (rng.random((idx.size, inputs.shape[1])) < mask_prob)
            if not masked.any():
                continue
            loss, grads = masked_word_loss(model, inputs[idx], masked, head)
            losses.append(float(loss))
            for name, g in grads.items():
                store = head if name in head else model.params
                configs.setdefault(name, {"learning_rate": learning_rate})
                store[name], configs[name] = adam(store[name], g.astype(model.dtype, copy=False), configs[name])
        history.append(float(np.mean(losses)) if losses else float("nan"))
    return history
