"""Models, optimizers, solvers and the command line on a device: ``model.to``, state where the model is,
host files, decoding back to numpy.

Run over the ``backend``/``device_backend`` fixtures of conftest.py: ``fake-gpu`` (tests/fake_cupy.py,
numpy arithmetic that refuses host arrays mixed with device ones, as CuPy does) always, a real GPU when
CuPy finds one. With the fake, forward passes, decoding and optimizer steps equal numpy's bit for bit;
on a real GPU the tests that compare with numpy allow float rounding where the GPU's kernels differ
(``close``). Training runs are compared to float32 rounding (``close_training``): a layer may sum in
another order on the device (e.g. the embedding gradient's scatter-add), which changes the last bit
of a few gradients. What crosses between backends (checkpoints, files, ``model.to``) is bit for bit.
"""
import sys

import numpy as np
import pytest

from cs231n import optim
from cs231n.backend import BackendError, get_array_module, to_numpy
from cs231n.classifiers.device import DeviceModel
from cs231n.solver import Solver, TrainingDivergedError
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


def close_training(got, want):
    """Training histories and weights after a few updates: equal up to float32 rounding."""
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


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


# ----------------------------------------------------------------------------------------------------
# Decoding on the device returns host numpy, the same as on the CPU
# ----------------------------------------------------------------------------------------------------

def test_language_model_samples_the_cpus_words_on_the_device(device_backend):
    model = LanguageModelRNN(7, 3, 5, cell_type="lstm", seed=2)
    want = model.sample(np.array([1, 4, 0]), 12, temperature=1.3, rng=7)
    want_greedy = model.sample(3, 5, temperature=0)
    model.to("gpu")
    got = model.sample(np.array([1, 4, 0]), 12, temperature=1.3, rng=7)
    assert type(got) is np.ndarray
    np.testing.assert_array_equal(got, want)  # the same uniform numbers, drawn at once
    np.testing.assert_array_equal(model.sample(3, 5, temperature=0), want_greedy)


# ----------------------------------------------------------------------------------------------------
# The generic Solver on the device, with a model that needs no layer: least squares
# ----------------------------------------------------------------------------------------------------

class LeastSquares(DeviceModel):
    """loss = mean((x w + b - y)^2) over N rows; params w (D, 1), b (1,); float32, computed with xp of x."""

    def __init__(self, D):
        rng = np.random.default_rng(0)
        self.params = {"w": rng.standard_normal((D, 1)).astype(np.float32), "b": np.zeros(1, np.float32)}

    def loss(self, x, y):
        assert get_array_module(x) is get_array_module(self.params["w"]), "the minibatch was not moved"
        diff = x @ self.params["w"] + self.params["b"] - y                  # (N, 1)
        loss = (diff * diff).mean()
        ddiff = (2.0 / diff.shape[0]) * diff
        return loss, {"w": x.T @ ddiff, "b": ddiff.sum(axis=0)}


class ArraySolver(Solver):
    """Minibatches of rows of host arrays X (N, D) and Y (N, 1), drawn with the global np.random."""

    def __init__(self, model, X, Y, **kwargs):
        self.X, self.Y = X, Y
        super().__init__(model, **kwargs)

    def _num_train(self):
        return self.X.shape[0]

    def _sample_batch(self):
        idx = np.random.choice(self.X.shape[0], self.batch_size)
        return self.X[idx], self.Y[idx]


def _least_squares_run(device, num_epochs=2, **kwargs):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 3)).astype(np.float32)
    Y = (X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.standard_normal((40, 1))).astype(np.float32)
    options = dict(update_rule="adam", optim_config={"learning_rate": 0.1}, batch_size=8, num_epochs=num_epochs,
                   lr_decay=0.9, grad_clip=1.0, seed=2, verbose=False)
    options.update(kwargs)
    return ArraySolver(LeastSquares(3).to(device), X, Y, **options)


def _assert_same_run(a, b):
    """Two solvers ended in the same state, bit for bit: losses, weights, optimizer state, counters."""
    assert all(type(x) is float for x in a.loss_history + b.loss_history)
    assert (a.iteration, a.epoch) == (b.iteration, b.epoch)
    assert a.loss_history == b.loss_history
    for name in a.model.params:
        np.testing.assert_array_equal(to_numpy(a.model.params[name]), to_numpy(b.model.params[name]))
        for key in ("m", "v"):
            np.testing.assert_array_equal(to_numpy(a.optim_configs[name][key]), to_numpy(b.optim_configs[name][key]))
        for key in ("t", "learning_rate"):
            assert a.optim_configs[name][key] == b.optim_configs[name][key]


def test_solver_trains_on_the_device_as_on_the_host():
    from fake_cupy import FakeCupy

    cpu = _least_squares_run("cpu")
    cpu.train()
    fake = FakeCupy()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "cupy", fake)
        gpu = _least_squares_run("gpu")
        before = fake.transfers
        gpu.train()
        assert fake.transfers - before == 2 * gpu.iteration  # each minibatch (x, y) crosses once, nothing else
        for name, w in gpu.model.params.items():
            assert isinstance(w, fake.ndarray)
            assert isinstance(gpu.optim_configs[name]["m"], fake.ndarray)
            assert isinstance(gpu.optim_configs[name]["v"], fake.ndarray)
        _assert_same_run(gpu, cpu)
    assert cpu.loss_history[-1] < 0.75 * cpu.loss_history[0]  # it did learn


@pytest.mark.parametrize("first, second", [("gpu", "cpu"), ("cpu", "gpu")])
def test_solver_checkpoint_resumes_on_the_other_backend_bit_exact(device_backend, tmp_path, first, second):
    from cs231n.solver import load_checkpoint

    whole = _least_squares_run("cpu", num_epochs=3)
    whole.train()
    part = _least_squares_run(first, num_epochs=1, checkpoint_name=str(tmp_path / "ckpt"))
    part.train()
    ckpt = load_checkpoint(part.checkpoint_path)
    state = [v for c in ckpt["optim_configs"].values() for v in c.values() if hasattr(v, "shape")]
    assert state and all(type(a) is np.ndarray for a in list(ckpt["params"].values()) + state)
    resumed = _least_squares_run(second, num_epochs=3, resume_from=part.checkpoint_path)
    if second == "gpu":  # parameters and optimizer state go where the model is
        device_backend.check(resumed.model.params["w"])
        device_backend.check(resumed.optim_configs["w"]["m"])
    _assert_same_run(resumed, part)  # the state crossed bit for bit
    resumed.train()
    if device_backend.name == "fake-gpu":  # numpy's arithmetic on both sides: the whole run, exactly
        _assert_same_run(resumed, whole)
    else:
        close_training(np.array(resumed.loss_history), np.array(whole.loss_history))


def test_solver_on_the_device_stops_on_nan_like_the_host(device_backend):
    solver = _least_squares_run("gpu", grad_clip=None)
    solver.X = solver.X.copy()
    solver.X[5:, 1] = np.inf  # most minibatches hold an infinite feature: the gradient of w is not finite
    with pytest.raises(TrainingDivergedError, match="iteration 1 .*(loss is (nan|inf)|gradient of 'w')"), \
            np.errstate(invalid="ignore", over="ignore"):
        solver.train()
    assert solver.iteration == 0 and solver.loss_history == []
    device_backend.check(solver.model.params["w"])
    np.testing.assert_array_equal(to_numpy(solver.model.params["w"]), LeastSquares(3).params["w"])


# ----------------------------------------------------------------------------------------------------
# The models' own layers on the device: decoding, training, checkpoints, the command line
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell_type", ["rnn", "lstm", "gru"])
def test_captioning_decoding_on_the_device_returns_the_cpus_captions(device_backend, cell_type):
    np.random.seed(3)
    model = CaptioningRNN(VOCAB, input_dim=4, wordvec_dim=3, hidden_dim=5, cell_type=cell_type,
                          dtype=np.float64)
    features = np.random.randn(9, 4)
    cases = [dict(max_length=11), dict(max_length=11, return_log_probs=True),
             dict(max_length=11, beam_size=3, n_best=2), dict(max_length=11, beam_size=3, length_penalty=0.7)]
    want = [model.sample(features, **kw) for kw in cases]
    assert (want[0] == VOCAB["<END>"]).any(), "the case should have captions that end early"
    model.to("gpu")
    for kw, w in zip(cases, want):
        for given in (features, device_backend.put(features)):  # host inputs are moved, device ones used
            got = model.sample(given, **kw)
            got, w2 = (got, w) if isinstance(got, tuple) else ((got,), (w,))
            for g, ref in zip(got, w2):
                assert type(g) is np.ndarray, f"{kw}: decoding returned {type(g)}"
                if g.dtype.kind == "f":
                    np.testing.assert_allclose(g, ref, rtol=1e-12)
                else:
                    np.testing.assert_array_equal(g, ref)


def test_temperature_sampling_on_the_device_returns_host_captions(device_backend):
    np.random.seed(4)
    model = CaptioningRNN(VOCAB, input_dim=4, wordvec_dim=3, hidden_dim=5, cell_type="lstm").to("gpu")
    features = np.random.randn(6, 4)
    a = model.sample(features, max_length=7, temperature=1.0, rng=5)
    b = model.sample(features, max_length=7, temperature=1.0, rng=5)
    assert type(a) is np.ndarray and a.shape == (6, 7) and a.dtype == np.int32
    np.testing.assert_array_equal(a, b)  # seeded: reproducible on the device too
    assert ((a != VOCAB["<NULL>"]) & (a != VOCAB["<START>"])).any()


def test_sequence_regressor_generates_host_arrays_on_the_device(device_backend):
    model = SequenceRegressor(2, 4, 2, cell_type="gru", dtype=np.float64, seed=1)
    seeds = np.random.default_rng(0).standard_normal((3, 4, 2))
    want = model.generate_sequence(seeds, 5)
    got = model.to("gpu").generate_sequence(seeds, 5)
    assert type(got) is np.ndarray
    close(device_backend, got, want)


def _captioning_run(device, tmp_path=None, num_epochs=2, resume_from=None, name="run", **extra):
    from test_solver import make_data, make_model
    from cs231n.captioning_solver import CaptioningSolver

    data = make_data(num_train=30)
    model = make_model(data, cell_type="lstm").to(device)
    options = dict(update_rule="adam", optim_config={"learning_rate": 5e-2}, batch_size=10,
                   num_epochs=num_epochs, lr_decay=0.9, grad_clip=0.5, seed=3, verbose=False)
    if tmp_path is not None:
        options["checkpoint_name"] = str(tmp_path / name)
    options.update(extra)
    return CaptioningSolver(model, data, resume_from=resume_from, **options)


def _assert_same_captioning_run(a, b, check=close_training):
    """Two solvers ended in the same state: losses, weights, optimizer state."""
    assert all(type(x) is float for x in a.loss_history + b.loss_history)
    assert a.iteration == b.iteration and a.epoch == b.epoch
    check(np.array(a.loss_history), np.array(b.loss_history))
    for name in a.model.params:
        check(to_numpy(a.model.params[name]), to_numpy(b.model.params[name]))
        for key in ("m", "v", "learning_rate"):
            check(to_numpy(a.optim_configs[name][key]), to_numpy(b.optim_configs[name][key]))
        assert a.optim_configs[name]["t"] == b.optim_configs[name]["t"]


def test_captioning_training_on_the_device_matches_numpy(device_backend):
    cpu = _captioning_run("cpu")
    cpu.train()
    gpu = _captioning_run("gpu")
    before = device_backend.xp.transfers if device_backend.name == "fake-gpu" else None
    gpu.train()
    assert gpu.model.device == "gpu"
    for name, w in gpu.model.params.items():
        device_backend.check(w)
        device_backend.check(gpu.optim_configs[name]["m"])
        device_backend.check(gpu.optim_configs[name]["v"])
    _assert_same_captioning_run(gpu, cpu)
    if before is not None:  # each minibatch (features, captions) crosses once per iteration, nothing else
        assert device_backend.xp.transfers - before == 2 * gpu.iteration


@pytest.mark.parametrize("first, second", [("gpu", "cpu"), ("cpu", "gpu")])
def test_captioning_checkpoint_resumes_on_the_other_backend(device_backend, tmp_path, first, second):
    from cs231n.solver import load_checkpoint

    whole = _captioning_run("cpu", num_epochs=2)
    whole.train()
    part = _captioning_run(first, tmp_path, num_epochs=1)
    part.train()
    ckpt = load_checkpoint(part.checkpoint_path)
    arrays = list(ckpt["params"].values()) + [v for c in ckpt["optim_configs"].values() for v in c.values()
                                              if hasattr(v, "shape")]
    assert arrays and all(type(a) is np.ndarray for a in arrays)
    resumed = _captioning_run(second, num_epochs=2, resume_from=part.checkpoint_path)
    if second == "gpu":  # resumed state goes where the model is
        device_backend.check(resumed.model.params["Wx"])
        device_backend.check(resumed.optim_configs["Wx"]["m"])
    _assert_same_captioning_run(resumed, part, np.testing.assert_array_equal)  # the state crossed bit for bit
    assert resumed.model.device == second
    resumed.train()
    _assert_same_captioning_run(resumed, whole)


def test_language_model_solver_trains_on_the_device(device_backend):
    from cs231n import text_utils
    from cs231n.lm_solver import LanguageModelSolver

    text = " ".join(["the cat sat on the mat and the dog sat on the log"] * 12)
    data = text_utils.prepare_text_data(text, seq_len=6)
    runs = []
    for device in ("cpu", "gpu"):
        model = LanguageModelRNN(len(data["idx_to_word"]), 4, 6, "gru", seed=0).to(device)
        solver = LanguageModelSolver(model, data, update_rule="rmsprop", optim_config={"learning_rate": 1e-2},
                                     batch_size=8, num_epochs=2, seed=1, verbose=False)
        solver.train()
        runs.append(solver)
    close_training(np.array(runs[1].loss_history), np.array(runs[0].loss_history))
    assert runs[1].val_history[-1] == pytest.approx(runs[0].val_history[-1], rel=1e-5)


def test_classification_solver_trains_on_the_device(device_backend):
    from cs231n.classification_solver import ClassificationSolver

    inputs, labels = cola_fixtures.make_split(60, seed=0)
    val_inputs, val_labels = cola_fixtures.make_split(20, seed=1)
    cola = {"train_inxs": inputs, "train_labels": labels, "val_inxs": val_inputs, "val_labels": val_labels,
            "word_to_ix": cola_fixtures.word_to_ix()}
    runs = []
    for device in ("cpu", "gpu"):
        model = LSTMClassifier(cola["word_to_ix"], wordvec_dim=4, hidden_dim=5, max_length=10, seed=0)
        solver = ClassificationSolver(model.to(device), cola, update_rule="sgd_momentum", batch_size=20,
                                      num_epochs=2, seed=1, verbose=False)
        solver.train()
        runs.append(solver)
    close_training(np.array(runs[1].loss_history), np.array(runs[0].loss_history))
    device_backend.check(runs[1].optim_configs["W_out"]["velocity"])


# ----------------------------------------------------------------------------------------------------
# Command line: --device
# ----------------------------------------------------------------------------------------------------

def _device_commands(tmp_path):
    """Every command that takes --device, with arguments that would run it (files exist, dirs are new)."""
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat\n" * 5)
    some_file = tmp_path / "some.npz"
    some_file.write_bytes(b"not read: the device is checked first")
    return {
        "train": ["train", "--out", str(tmp_path / "train")],
        "evaluate": ["evaluate", "--checkpoint", str(some_file)],
        "caption": ["caption", "--checkpoint", str(some_file), str(some_file)],
        "lm-train": ["lm-train", "--text", str(text), "--out", str(tmp_path / "lm")],
        "lm-sample": ["lm-sample", "--checkpoint", str(some_file), "--start", "cat"],
        "classify-train": ["classify-train", "--data", str(tmp_path), "--out", str(tmp_path / "cls")],
    }


@pytest.mark.parametrize("command", ["train", "evaluate", "caption", "lm-train", "lm-sample", "classify-train"])
def test_cli_device_gpu_without_cupy_is_one_error_line_before_any_work(command, tmp_path, monkeypatch, capsys):
    from cs231n.cli import main

    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    argv = _device_commands(tmp_path)[command]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv + ["--device", "gpu"]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "CuPy" in lines[0], err
    assert "--device cpu" in lines[0]
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no run directory


def test_cli_device_option_is_documented_and_checked(capsys):
    from cs231n.cli import main

    for command in ("train", "evaluate", "caption", "lm-train", "lm-sample", "classify-train"):
        assert main([command, "--help"]) == 0
        assert "--device {cpu,gpu}" in capsys.readouterr().out
    assert main(["lm-sample", "--checkpoint", __file__, "--start", "a", "--device", "tpu"]) == 2
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


def test_cli_python_m_cs231n_without_cupy_exits_1(tmp_path):
    import subprocess

    code = ("import sys; sys.modules['cupy'] = None; from cs231n.cli import main; "
            "sys.exit(main(['lm-train', '--text', sys.argv[1], '--device', 'gpu', '--out', sys.argv[2]]))")
    text = tmp_path / "t.txt"
    text.write_text("a b c\n")
    run = subprocess.run([sys.executable, "-c", code, str(text), str(tmp_path / "lm")], capture_output=True,
                         text=True)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith("error: the GPU needs CuPy") and run.stderr.count("\n") == 1
    assert not (tmp_path / "lm").exists()


def test_cli_trains_evaluates_and_samples_on_the_device(device_backend, tiny_dir, tmp_path, capsys,
                                                          monkeypatch):
    from cs231n import vis
    from cs231n.archive import load_archive
    from cs231n.cli import main

    for figure in ("caption_grid", "plot_training_curves"):  # drawing PNGs is most of train's time
        monkeypatch.setattr(vis, figure, lambda *args, **kwargs: None)

    small = ["--data-dir", str(tiny_dir), "--epochs", "1", "--num-val-images", "5", "--wordvec-dim", "8",
             "--hidden-dim", "8", "--batch-size", "50", "--seed", "3", "--quiet"]
    # Training on the device is compared with numpy in the solver tests; here: the command runs there and
    # writes host files, which evaluate reads on either device with the same captions.
    out = tmp_path / "gpu"
    assert main(["train", "--out", str(out), "--device", "gpu"] + small) == 0
    capsys.readouterr()
    arrays, _ = load_archive(out / "model.npz")
    assert arrays and all(type(a) is np.ndarray for a in arrays.values())
    runs = {"gpu": out}
    assert main(["evaluate", "--checkpoint", str(runs["gpu"] / "model.npz"), "--device", "gpu", "--json"]) == 0
    on_gpu = capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(runs["gpu"] / "model.npz"), "--json"]) == 0
    assert on_gpu == capsys.readouterr().out  # the same captions, decoded on either device

    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat and the dog sat on the log\n" * 10)
    lm = tmp_path / "lm"
    assert main(["lm-train", "--text", str(text), "--hidden-dim", "8", "--wordvec-dim", "4", "--seq-len", "5",
                 "--batch-size", "10", "--epochs", "1", "--out", str(lm), "--quiet", "--device", "gpu"]) == 0
    capsys.readouterr()
    samples = []
    for device in ("cpu", "gpu"):
        assert main(["lm-sample", "--checkpoint", str(lm / "lm_checkpoint.npz"), "--start", "cat",
                     "--length", "6", "--device", device]) == 0
        samples.append(capsys.readouterr().out)
    assert samples[0] == samples[1] and samples[0].startswith("cat ")


def test_cli_train_precision_tf32_on_the_device_only(device_backend, tiny_dir, tmp_path, capsys, monkeypatch):
    import json

    from cs231n import vis
    from cs231n.cli import main

    for figure in ("caption_grid", "plot_training_curves"):
        monkeypatch.setattr(vis, figure, lambda *args, **kwargs: None)
    small = ["--data-dir", str(tiny_dir), "--epochs", "1", "--num-val-images", "0", "--wordvec-dim", "8",
             "--hidden-dim", "8", "--batch-size", "50", "--seed", "3", "--quiet"]
    assert main(["train", "--out", str(tmp_path / "cpu"), "--precision", "tf32"] + small) != 0
    assert "--precision tf32 changes the GPU's matrix products; it needs --device gpu" in capsys.readouterr().err
    out = tmp_path / "tf32"
    assert main(["train", "--out", str(out), "--device", "gpu", "--precision", "tf32"] + small) == 0
    assert json.loads((out / "config.json").read_text())["precision"] == "tf32"
