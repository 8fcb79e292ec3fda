"""Models, optimizers, solvers and the command line on a device: ``model.to``, state where the model is,
host files, decoding back to numpy.

Run over the ``backend``/``device_backend`` fixtures of conftest.py: ``fake-gpu`` (tests/fake_cupy.py,
numpy arithmetic that refuses host arrays mixed with device ones, as CuPy does) always, a real GPU when
CuPy finds one. With the fake, results must equal numpy's bit for bit; on a real GPU the tests that
compare with numpy allow float rounding where the GPU's kernels differ (``close``).
"""
import sys

import numpy as np
import pytest

from cs231n import optim
from cs231n.backend import BackendError
from cs231n.classifiers.classification_transformer import ClassificationTransformer
from cs231n.classifiers.language_model import LanguageModelRNN
from cs231n.classifiers.rnn import CaptioningRNN
from cs231n.classifiers.sentence import LSTMClassifier, load_sentence_classifier
from cs231n.classifiers.sequence_regressor import SequenceRegressor
from cs231n.classifiers.transformer import CaptioningTransformer
from cs231n.classifiers.captioning import CaptioningModel

import cola_fixtures

VOCAB = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "b": 4, "c": 5, "d": 6}


def close(backend, got, want):
    """Bit for bit on numpy and the fake; float rounding allowed on a real GPU."""
    if backend.name == "gpu":
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    else:
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------------------------------
# Optimizers
# ----------------------------------------------------------------------------------------------------

STATE = {"sgd": (), "sgd_momentum": ("velocity",), "rmsprop": ("cache",), "adam": ("m", "v")}


@pytest.mark.parametrize("rule", sorted(STATE))
def test_optimizer_computes_on_the_device_of_its_inputs(backend, rule):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 5)).astype(np.float32)
    grads = [rng.standard_normal((4, 5)).astype(np.float32) for _ in range(3)]
    update = getattr(optim, rule)

    w_ref, config_ref = w0, None
    for dw in grads:
        w_ref, config_ref = update(w_ref, dw, config_ref)

    w, config = backend.put(w0), None
    for dw in grads:
        w, config = update(w, backend.put(dw), config)
    backend.check(w)
    assert w.dtype == np.float32
    close(backend, backend.get(w), w_ref)
    for key in STATE[rule]:
        close(backend, backend.get(config[key]), config_ref[key])
    if rule == "adam":
        assert config["t"] == 3 and isinstance(config["t"], int)


def test_optimizer_moves_host_state_to_the_device_once(device_backend):
    # A checkpoint holds host arrays; resumed on the GPU, the state follows the weights on the first update.
    rng = np.random.default_rng(1)
    w, dw = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    state = {"m": rng.standard_normal((3, 2)), "v": rng.random((3, 2)), "t": 4}
    want_w, want = optim.adam(w, dw, dict(state))
    got_w, got = optim.adam(device_backend.put(w), device_backend.put(dw), dict(state))
    for key in ("m", "v"):
        close(device_backend, device_backend.get(got[key]), want[key])
    close(device_backend, device_backend.get(got_w), want_w)


def test_optimizer_refuses_w_and_dw_on_two_devices(device_backend):
    w = np.ones((2, 2))
    with pytest.raises(TypeError, match="same device"):
        optim.sgd(device_backend.put(w), w)
    with pytest.raises(TypeError, match="same device"):
        optim.adam(w, device_backend.put(w))


# ----------------------------------------------------------------------------------------------------
# model.to, model.device, files
# ----------------------------------------------------------------------------------------------------

def _models():
    """One small model of every movable kind, float64, with a loader for its files."""
    np.random.seed(0)
    vocab = cola_fixtures.word_to_ix()
    return {
        "CaptioningRNN": (CaptioningRNN(VOCAB, input_dim=4, wordvec_dim=3, hidden_dim=5, cell_type="lstm",
                                        dtype=np.float64), CaptioningModel.load),
        "CaptioningTransformer": (CaptioningTransformer(VOCAB, 4, 8, num_heads=2, num_layers=1, max_length=12,
                                                        dim_feedforward=6, dtype=np.float64),
                                  CaptioningModel.load),
        "LanguageModelRNN": (LanguageModelRNN(7, 3, 5, cell_type="gru", dtype=np.float64, seed=0),
                             LanguageModelRNN.load),
        "SequenceRegressor": (SequenceRegressor(2, 4, 2, cell_type="rnn", dtype=np.float64, seed=0),
                              SequenceRegressor.load),
        "LSTMClassifier": (LSTMClassifier(vocab, wordvec_dim=3, hidden_dim=4, max_length=10,
                                          dtype=np.float64, seed=0), load_sentence_classifier),
        "ClassificationTransformer": (ClassificationTransformer(vocab, hidden_dim=8, num_heads=2,
                                                                dim_feedforward=6, dim_k=4, dim_v=4, dim_q=4,
                                                                max_length=10, dtype=np.float64, seed=0),
                                      load_sentence_classifier),
    }


MODEL_KINDS = sorted(_models())


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_model_to_round_trip_is_bit_exact(device_backend, kind):
    model, _ = _models()[kind]
    host = {k: v.copy() for k, v in model.params.items()}
    assert model.device == "cpu"
    assert model.to("gpu") is model
    assert model.device == "gpu"
    for name, w in model.params.items():
        device_backend.check(w)
        np.testing.assert_array_equal(device_backend.get(w), host[name])
    for name in model.DEVICE_ATTRS:
        device_backend.check(getattr(model, name))
    assert model.to("cpu") is model and model.device == "cpu"
    for name, w in model.params.items():
        assert type(w) is np.ndarray and w.dtype == host[name].dtype
        np.testing.assert_array_equal(w, host[name])
    for name in model.DEVICE_ATTRS:
        assert type(getattr(model, name)) is np.ndarray


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_model_saved_from_the_device_loads_on_the_cpu_bit_exact(device_backend, kind, tmp_path):
    model, load = _models()[kind]
    host = {k: v.copy() for k, v in model.params.items()}
    model.to("gpu")
    path = model.save(tmp_path / "model.npz")
    assert model.device == "gpu"  # saving copies, it does not move the model
    loaded = load(path)
    assert type(loaded) is type(model) and loaded.device == "cpu"
    assert sorted(loaded.params) == sorted(host)
    for name, w in loaded.params.items():
        assert type(w) is np.ndarray
        np.testing.assert_array_equal(w, host[name])


def test_model_to_rejects_a_bad_device_name_and_device_is_read_only():
    model, _ = _models()["CaptioningRNN"]
    with pytest.raises(ValueError, match="device"):
        model.to("cuda")
    with pytest.raises(AttributeError):
        model.device = "gpu"
    assert model.device == "cpu"


def test_model_to_gpu_without_cupy_raises_and_leaves_the_model_alone(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    model, _ = _models()["CaptioningTransformer"]
    before = dict(model.params)
    with pytest.raises(BackendError, match="CuPy"):
        model.to("gpu")
    assert model.device == "cpu"
    assert all(model.params[k] is before[k] for k in before)
