"""Tests of ClassificationTransformer: the classic reference outputs d1..d4, gradients, options, errors.

- The classic model's layers are built in PyTorch exactly as ../shared/data/cola/README.md describes
  (seeds, construction order; ``classic_torch_model``); its weights are copied into
  ClassificationTransformer, whose embed / multi_head_attention / feedforward_layer / final_layer must
  then reproduce d1.npy..d4.npy. The classic forward pass is also written here with torch ops, and
  every stage must agree with it.
- Gradients of the whole classifier are checked in float64 against central differences (conftest's
  ``num_grad``) for the option combinations, and against PyTorch autograd for the classic model.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from cola_fixtures import make_split, word_to_ix
from cs231n.classifiers.classification_transformer import (ClassificationTransformer, classic_torch_model,
                                                           torch_weights_as_params)
from cs231n.classifiers.sentence import load_sentence_classifier
from cs231n.cola_utils import load_cola_data

COLA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cola"


def _torch_stages(torch, m, inputs):
    """The classic forward pass, written here with torch ops: d1 (embed) .. d4 (final layer)."""
    T = inputs.shape[1]
    d1 = m.embeddingL(inputs) + m.posembeddingL(torch.arange(T))
    heads = []
    for i in range(1, m.num_heads + 1):
        q, k, v = getattr(m, f"q{i}")(d1), getattr(m, f"k{i}")(d1), getattr(m, f"v{i}")(d1)
        a = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / np.sqrt(m.dim_k), dim=2)
        heads.append(torch.bmm(a, v))
    d2 = m.norm_mh(m.attention_head_projection(torch.cat(heads, dim=2)) + d1)
    d3 = m.norm_ffn(m.W2(torch.relu(m.W1(d2))) + d2)
    d4 = torch.sigmoid(m.final_dense(d3[:, 0, :]))
    return d1, d2, d3, d4


def _classic_torch_model(torch, V, **dims):
    m = classic_torch_model(V, **dims)
    m.num_heads, m.dim_k = dims.get("num_heads", 2), dims.get("dim_k", 96)
    return m


def _copy_weights(m, model):
    model.set_params(torch_weights_as_params(m, m.num_heads))


def _distance(a, b):
    """The classic check: the sum over rows of the Euclidean distance between matching vectors."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm((a - b).reshape(-1, a.shape[-1]), axis=1).sum())


@pytest.mark.skipif(not COLA.is_dir(), reason="the shared CoLA data is not present")
def test_reproduces_the_classic_reference_outputs():
    torch = pytest.importorskip("torch")
    data = load_cola_data(COLA)
    vocab = {w: str(i) for w, i in data["word_to_ix"].items()}  # as the classic CSV loader gives it
    m = _classic_torch_model(torch, len(vocab))
    model = ClassificationTransformer(vocab, hidden_dim=128, num_heads=2, dim_feedforward=2048, dim_k=96,
                                      dim_v=96, dim_q=96, max_length=43)
    _copy_weights(m, model)
    inputs = data["train_inxs"][0:2]
    d1 = model.embed(inputs)
    d2 = model.multi_head_attention(d1)
    d3 = model.feedforward_layer(d2)
    d4 = model.final_layer(d3)
    assert [d.shape for d in (d1, d2, d3, d4)] == [(2, 43, 128)] * 3 + [(2, 1)]
    assert all(d.dtype == np.float32 for d in (d1, d2, d3, d4))
    diffs = [_distance(mine, np.load(COLA / f"d{i}.npy")) for i, mine in enumerate((d1, d2, d3, d4), 1)]
    print("d1..d4 differences:", diffs)
    assert diffs[0] < 0.01 and diffs[1] < 0.01 and diffs[2] < 0.01 and diffs[3] < 1e-5
    np.testing.assert_array_equal(model.forward(inputs), d4)
    # each stage also agrees with the torch ops on the same input, stage by stage
    with torch.no_grad():
        ref = _torch_stages(torch, m, torch.as_tensor(inputs))
    for mine, theirs in zip((d1, d2, d3, d4), ref):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-4, atol=1e-5)


def test_gradients_match_torch_autograd(relerr):
    torch = pytest.importorskip("torch")
    V, T = 15, 10
    m = _classic_torch_model(torch, V, hidden_dim=16, num_heads=2, dim_feedforward=32, dim_k=6, dim_v=5, dim_q=6,
                             max_length=T).double()
    model = ClassificationTransformer(word_to_ix(), hidden_dim=16, num_heads=2, dim_feedforward=32, dim_k=6,
                                      dim_v=5, dim_q=6, max_length=T, dtype=np.float64)
    _copy_weights(m, model)
    inputs, labels = make_split(7, 11)
    loss, grads = model.loss(inputs, labels)
    p = _torch_stages(torch, m, torch.as_tensor(inputs))[3][:, 0]
    y = torch.as_tensor(labels, dtype=torch.float64)
    ref = torch.nn.functional.binary_cross_entropy(p, y)
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    h = m.num_heads
    g = lambda x: x.grad.numpy()  # noqa: E731
    expected = {"W_embed": g(m.embeddingL.weight), "W_pos": g(m.posembeddingL.weight),
                "l0_Wo": g(m.attention_head_projection.weight).T, "l0_bo": g(m.attention_head_projection.bias),
                "l0_ln1_gamma": g(m.norm_mh.weight), "l0_ln1_beta": g(m.norm_mh.bias),
                "l0_W1": g(m.W1.weight).T, "l0_b1": g(m.W1.bias), "l0_W2": g(m.W2.weight).T, "l0_b2": g(m.W2.bias),
                "l0_ln2_gamma": g(m.norm_ffn.weight), "l0_ln2_beta": g(m.norm_ffn.bias),
                "W_final": g(m.final_dense.weight).T, "b_final": g(m.final_dense.bias)}
    for name in ("q", "k", "v"):
        expected[f"l0_W{name}"] = np.concatenate([g(getattr(m, f"{name}{i}").weight).T for i in range(1, h + 1)], 1)
        expected[f"l0_b{name}"] = np.concatenate([g(getattr(m, f"{name}{i}").bias) for i in range(1, h + 1)])
    assert set(expected) == set(grads)
    for name, want in expected.items():
        assert relerr(grads[name], want) < 1e-9, name


OPTIONS = [
    dict(),
    dict(pad_mask=True, readout="cls"),
    dict(pad_mask=True, readout="mean", num_layers=2, activation="gelu", dropout=0.3),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "classic")
def test_gradients_numerically(options, num_grad, relerr):
    # tiny sizes keep the central differences quick; dim_v differs from dim_k so that a mix-up shows
    model = ClassificationTransformer(word_to_ix(), hidden_dim=4, num_heads=2, dim_feedforward=6, dim_k=2,
                                      dim_v=3, dim_q=2, max_length=10, dtype=np.float64, seed=1, **options)
    rng = np.random.default_rng(0)
    for name in model.params:  # LayerNorm starts at 1 and 0; move every parameter off its start
        model.params[name] += 0.1 * rng.standard_normal(model.params[name].shape)
    inputs, labels = make_split(4, 5)

    def loss(_):
        model.rng = np.random.default_rng(7)  # the same dropout masks for every evaluation
        return model.loss(inputs, labels)[0]

    model.rng = np.random.default_rng(7)
    _, grads = model.loss(inputs, labels)
    worst = 0.0
    for name, w in model.params.items():
        numeric = num_grad(loss, w, 1.0)
        if name.endswith("_bk"):
            # q.(k + bk) shifts every score of a query by the same q.bk, which softmax ignores: the
            # gradient of the key bias is exactly zero, so a relative error would compare noise
            assert np.abs(grads[name]).max() < 1e-12 and np.abs(numeric).max() < 1e-8
            continue
        err = relerr(grads[name], numeric)
        worst = max(worst, err)
        assert err < 1e-6, name
    print(options, "max relative error", worst)


def test_padding_mask_makes_padding_irrelevant():
    model = ClassificationTransformer(word_to_ix(), hidden_dim=8, num_heads=2, dim_feedforward=12, dim_k=4,
                                      dim_v=4, dim_q=4, max_length=13, pad_mask=True, readout="mean",
                                      dtype=np.float64, seed=0)
    inputs, _ = make_split(5, 6)
    longer = np.concatenate([inputs, np.full((5, 3), 14)], axis=1)
    np.testing.assert_allclose(model.scores(longer), model.scores(inputs), rtol=1e-12)
    for i, row in enumerate(inputs):  # one sentence alone, without the batch's padding
        end = list(row).index(13) + 1
        np.testing.assert_allclose(model.scores(row[None, :end]), model.scores(inputs)[i:i + 1], rtol=1e-12)
    # without the mask PAD is attended to, so extra padding changes the prediction
    classic = ClassificationTransformer(word_to_ix(), hidden_dim=8, num_heads=2, dim_feedforward=12, dim_k=4,
                                        dim_v=4, dim_q=4, max_length=13, dtype=np.float64, seed=0)
    assert not np.allclose(classic.scores(longer), classic.scores(inputs))


def test_dropout_only_in_training(tmp_path):
    model = ClassificationTransformer(word_to_ix(), hidden_dim=8, num_heads=2, dim_feedforward=12, dim_k=4,
                                      dim_v=4, dim_q=4, max_length=10, dropout=0.5, seed=0)
    inputs, labels = make_split(6, 2)
    np.testing.assert_array_equal(model.predict_proba(inputs), model.predict_proba(inputs))
    assert model.loss(inputs, labels)[0] != model.loss(inputs, labels)[0]
    path = model.save(tmp_path / "t.npz")
    loaded = load_sentence_classifier(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict_proba(inputs), model.predict_proba(inputs))


def test_errors():
    vocab = word_to_ix()
    with pytest.raises(ValueError, match="dim_q must equal dim_k"):
        ClassificationTransformer(vocab, dim_q=8, dim_k=6)
    with pytest.raises(ValueError, match="dropout must be a drop probability"):
        ClassificationTransformer(vocab, dropout=1.0)
    with pytest.raises(ValueError, match="readout must be one of"):
        ClassificationTransformer(vocab, readout="last")
    with pytest.raises(ValueError, match="pad_mask=True needs a 'PAD' token"):
        ClassificationTransformer({"a": 0, "b": 1}, pad_mask=True)
    model = ClassificationTransformer(vocab, hidden_dim=8, num_heads=2, dim_feedforward=12, dim_k=4, dim_v=4,
                                      dim_q=4, max_length=10, pad_mask=True)
    with pytest.raises(ValueError, match="beyond the model's max_length 10"):
        model.embed(np.zeros((1, 11), dtype=int))
    with pytest.raises(ValueError, match=r"outside the vocabulary \[0, 15\)"):
        model.forward(np.array([[1, 15]]))
    with pytest.raises(ValueError, match="shape \\(N, T, H\\) with H = 8"):
        model.multi_head_attention(np.zeros((1, 3, 7)))
    with pytest.raises(ValueError, match="row 1 is all PAD"):
        model.loss(np.array([[1, 13], [14, 14]]), [1, 0])
    with pytest.raises(ValueError, match="labels must be 0"):
        model.loss(np.array([[1, 13]]), [3])


def test_training_with_dropout_resumes_bit_exact(tmp_path):
    from cola_fixtures import write_cola_dir
    from cs231n.classification_solver import ClassificationSolver

    data = load_cola_data(write_cola_dir(tmp_path / "cola", num_train=80, num_val=40))
    ckpt = str(tmp_path / "ck")

    def solver(**kwargs):
        model = ClassificationTransformer(data["word_to_ix"], hidden_dim=8, num_heads=2, dim_feedforward=16,
                                          dim_k=4, dim_v=4, dim_q=4, max_length=10, pad_mask=True,
                                          readout="mean", dropout=0.2, seed=0)
        options = dict(update_rule="adam", optim_config={"learning_rate": 1e-2}, batch_size=20, num_epochs=10,
                       seed=0, verbose=False)
        options.update(kwargs)
        return ClassificationSolver(model, data, **options)

    full = solver()
    full.train()
    solver(num_epochs=4, checkpoint_name=ckpt).train()
    resumed = solver(resume_from=ckpt + ".npz")
    resumed.train()
    assert resumed.loss_history == full.loss_history
    for name in full.model.params:
        np.testing.assert_array_equal(resumed.model.params[name], full.model.params[name])
    assert full.best_val_mcc > 0.3  # it learns the synthetic rule (label = 'w1' occurs)


def test_classify_train_transformer_command(tmp_path):
    from cola_fixtures import write_cola_dir
    from cs231n.cli import main

    folder = write_cola_dir(tmp_path / "cola", num_train=60, num_val=30)
    out = tmp_path / "run"
    options = ["hidden_dim=8", "dim_feedforward=16", "dim_k=4", "dim_v=4", "dim_q=4"]
    argv = ["classify-train", "--data", str(folder), "--epochs", "2", "--out", str(out), "--quiet"]
    assert main(argv + [x for o in options for x in ("--option", o)]) == 0
    model = load_sentence_classifier(out / "model.npz")
    assert isinstance(model, ClassificationTransformer)
    assert (model.hidden_dim, model.readout, model.pad_mask, model.dropout) == (8, "mean", True, 0.2)
    scores = json.loads((out / "scores.json").read_text())
    assert scores["options"]["class_weight"] == "balanced"


# ----------------------------------------------------------------------------------------------------
# Array backends: a model whose parameters are device arrays computes on the device
# ----------------------------------------------------------------------------------------------------

def tiny_model(**options):
    model = ClassificationTransformer(word_to_ix(), hidden_dim=4, num_heads=2, dim_feedforward=6, dim_k=2,
                                      dim_v=3, dim_q=2, max_length=10, dtype=np.float64, seed=1, **options)
    rng = np.random.default_rng(0)
    for name in model.params:
        model.params[name] += 0.1 * rng.standard_normal(model.params[name].shape)
    return model


def host_float(backend, value):
    if backend.name != "numpy" and not isinstance(value, (float, np.floating)):
        value = backend.get(value)
    return float(value)


@pytest.mark.parametrize("options", OPTIONS[:2] + [dict(OPTIONS[2], dropout=0.0)],
                         ids=["classic", "pad_cls", "pad_mean_2layers_gelu"])
def test_loss_and_predictions_on_backend_match_numpy(options, backend):
    model = tiny_model(**options)
    inputs, labels = make_split(5, 8)
    inputs[:, -1] = 14  # every row ends in PAD, so the pad mask drops a column
    loss, grads = model.loss(inputs, labels)
    proba = model.predict_proba(inputs)
    evaluation = model.evaluate(inputs, labels)
    model.to(backend.device)
    inputs_b, labels_b = backend.put([inputs, labels])
    copies = getattr(backend.xp, "transfers", 0)
    loss_b, grads_b = model.loss(inputs_b, labels_b)
    assert getattr(backend.xp, "transfers", 0) == copies  # device inputs are used where they are
    assert host_float(backend, loss_b) == pytest.approx(loss, rel=1e-12)
    for name in grads:
        np.testing.assert_allclose(backend.get(grads_b[name]), grads[name], rtol=1e-10, atol=1e-13, err_msg=name)
    np.testing.assert_allclose(backend.get(model.predict_proba(backend.put(inputs))), proba, rtol=1e-12)
    evaluation_b = model.evaluate(*backend.put([inputs, labels]))      # plain numbers, on the host
    assert evaluation_b.pop("loss") == pytest.approx(evaluation.pop("loss"), rel=1e-12)
    assert evaluation_b == evaluation


def test_dropout_on_device_reproducible_and_gradients_check(device_backend, num_grad, relerr):
    """The device masks come from ``model.rng`` (one host draw each): the same generator state gives the
    same loss, and float64 gradients on the device agree with central differences on the host."""
    model = tiny_model(**OPTIONS[2]).to(device_backend.device)
    inputs, labels = device_backend.put(list(make_split(4, 5)))

    def loss_at(seed):
        model.rng = np.random.default_rng(seed)
        return host_float(device_backend, model.loss(inputs, labels)[0])

    assert loss_at(7) == loss_at(7) != loss_at(8)
    model.rng = np.random.default_rng(7)
    _, grads = model.loss(inputs, labels)
    for name in ("l0_Wq", "l1_W1", "W_final"):  # attention, feed-forward (both with dropout), readout
        host = device_backend.get(model.params[name])

        def loss_of(w, name=name):
            model.params[name] = device_backend.put(w)
            return loss_at(7)

        numeric = num_grad(loss_of, host, 1.0)
        model.params[name] = device_backend.put(host)
        assert relerr(device_backend.get(grads[name]), numeric) < 1e-6, name


def test_errors_unchanged_on_device(device_backend):
    model = ClassificationTransformer(word_to_ix(), hidden_dim=8, num_heads=2, dim_feedforward=12, dim_k=4,
                                      dim_v=4, dim_q=4, max_length=10, pad_mask=True, readout="cls")
    model.to(device_backend.device)
    put = device_backend.put
    with pytest.raises(ValueError, match=r"inputs\[0, 1\] = 15 is outside the vocabulary \[0, 15\)"):
        model.forward(put(np.array([[1, 15]])))
    with pytest.raises(ValueError, match="row 1 is all PAD"):
        model.loss(put(np.array([[1, 13], [14, 14]])), put(np.array([1, 0])))
    with pytest.raises(ValueError, match="every token of the batch is PAD"):
        model.loss(put(np.array([[14, 14], [14, 14]])), put(np.array([1, 0])))
    with pytest.raises(ValueError, match="label 0 is 3; labels must be 0"):
        model.loss(put(np.array([[1, 13]])), put(np.array([3])))
    with pytest.raises(ValueError, match="row 0 holds 2 CLS tokens"):
        model.loss(put(np.array([[13, 13]])), put(np.array([1])))
    with pytest.raises(ValueError, match="weights must be 1 finite non-negative numbers"):
        model.loss(put(np.array([[1, 13]])), put(np.array([1])), weights=put(np.array([np.nan])))
