"""Kernel launches and host synchronisations, counted by the fake CuPy (issue 23).

First what the fake counts (one launch per device operation, none for views and allocations, one sync
per value read by the host), then the training step of every model through the project's solvers
(``benchmarks/gpu_counts.py`` prints the same counts as a table).
"""
import os
import sys

import numpy as np
import pytest

import fake_cupy
from fake_cupy import FakeCupy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import gpu_counts  # noqa: E402


@pytest.fixture
def fake(monkeypatch):
    xp = FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", xp)
    return xp


def delta(fn):
    """(launches, syncs) that ``fn()`` adds."""
    before = fake_cupy.COUNTS.snapshot()
    fn()
    after = fake_cupy.COUNTS.snapshot()
    return after["launches"] - before["launches"], after["syncs"] - before["syncs"]


def test_launches_are_operations_not_views_or_allocations(fake):
    a = fake.asarray(np.arange(12.0).reshape(3, 4))
    b = fake.asarray(np.ones((3, 4)))
    assert delta(lambda: a + b) == (1, 0)
    assert delta(lambda: fake.exp(a)) == (1, 0)
    assert delta(lambda: a.sum(axis=1)) == (1, 0)
    assert delta(lambda: a.mean()) == (1, 0)          # one reduction kernel in CuPy (numpy: sum, divide)
    assert delta(lambda: a @ b.T) == (1, 0)
    assert delta(lambda: fake.zeros((2, 2))) == (1, 0)
    assert delta(lambda: fake.concatenate([a, b])) == (1, 0)
    assert delta(lambda: a.astype(np.float32)) == (1, 0)
    assert delta(lambda: a[[0, 2]]) == (1, 0)         # a gather
    assert delta(lambda: a[a > 3]) == (2, 0)          # the comparison, then the boolean gather
    assert delta(lambda: fake.random.RandomState(0).random_sample((2,))) == (1, 0)

    def setitem():
        a[0, 1] = 5.0
    assert delta(setitem) == (1, 0)
    # views and allocations launch nothing
    assert delta(lambda: (a[1:], a.T, a.reshape(4, 3), a[0, 1], a.astype(a.dtype, copy=False),
                          fake.empty((5,)), fake.empty_like(a), fake.broadcast_to(a[0], (3, 4)))) == (0, 0)


def test_syncs_are_reads_of_device_values(fake):
    a = fake.asarray(np.arange(6.0))
    assert delta(lambda: float(a[1])) == (0, 1)
    assert delta(lambda: int(a[1])) == (0, 1)
    assert delta(lambda: a.max().item()) == (1, 1)
    assert delta(lambda: a.tolist()) == (0, 1)
    assert delta(lambda: a.get()) == (0, 1)
    assert delta(lambda: fake.asnumpy(a)) == (0, 1)
    assert delta(lambda: bool((a > 2).any())) == (2, 1)  # an `if` on a device value waits for it
    assert delta(lambda: "%f" % a[2]) == (0, 1)
    assert delta(lambda: a.shape[0] + a.ndim + a.size) == (0, 0)  # metadata lives on the host
    assert delta(lambda: fake.asnumpy(np.ones(2))) == (0, 0)     # a host array is not read from a device


def test_every_model_trains_a_step_on_the_fake_and_the_table_shows_it(fake):
    counts = {k: gpu_counts.count_step(k) for k in gpu_counts.MODELS}
    text = gpu_counts.table(counts).splitlines()
    assert len(text) == 1 + len(gpu_counts.MODELS)
    for line, (kind, c) in zip(text[1:], counts.items()):
        assert c["launches"] > 0 and c["transfers"] >= 2  # the minibatch crossed, the step ran
        assert line.split() == [kind] + [str(c[k]) for k in ("launches", "syncs", "transfers", "generators")]


@pytest.mark.parametrize("kind", gpu_counts.MODELS)
def test_a_training_step_reads_the_device_once(fake, kind):
    """The loss, the finiteness flags and the model's input checks come back in one read (issue 23)."""
    assert gpu_counts.count_step(kind)["syncs"] == 1


@pytest.mark.parametrize("kind", ["transformer", "cola"])
def test_dropout_reuses_one_generator(fake, kind):
    """Each dropout mask reseeds one cuRAND generator instead of creating (and destroying) its own."""
    gpu_counts.count_step(kind)  # the process's generator exists from here on
    assert gpu_counts.count_step(kind)["generators"] == 0


def test_input_checks_deferred_by_the_solver_still_raise_their_own_error(fake):
    from cs231n.backend import to_device
    solver = gpu_counts.make_solver("lstm")
    solver.data["train_captions"][:, 3] = 99  # not a word of the vocabulary
    with pytest.raises(ValueError, match="captions holds index 99, outside"):
        solver._step()
    assert solver.iteration == 0 and solver.loss_history == []  # nothing committed
    captions = to_device(solver.data["train_captions"][:4], "gpu")
    features = to_device(solver.data["train_features"][:4], "gpu")
    with pytest.raises(ValueError, match="captions holds index 99, outside"):  # outside a solver: at once
        solver.model.loss(features, captions)

    cola = gpu_counts.make_solver("cola")
    cola.train_labels[:] = 2
    with pytest.raises(ValueError, match="label 0 is 2"):
        cola._step()


def test_tf32_precision_changes_only_the_steps_matrix_products(fake):
    """precision='tf32': the step's float32 products are TF32 (the fake rounds their inputs as tensor
    cores do), so the losses move in the 3rd-4th digit; float32 (the default) stays bit for bit."""
    from cs231n.backend import matmul_precision
    linalg = fake._core._routines_linalg
    runs = {}
    for precision in ("float32", None, "tf32"):
        options = {} if precision is None else {"precision": precision}
        solver = gpu_counts.make_solver("transformer", **options)
        solver._start_rng()
        for _ in range(3):
            solver._step()
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT  # restored
        runs[precision] = np.array(solver.loss_history)
    np.testing.assert_array_equal(runs["float32"], runs[None])  # the default is float32
    assert not np.array_equal(runs["tf32"], runs["float32"])
    np.testing.assert_allclose(runs["tf32"], runs["float32"], rtol=1e-2)
    with pytest.raises(ValueError, match="precision must be one of"):
        gpu_counts.make_solver("lstm", precision="fp16")
    a = fake.asarray(np.float32([[1 + 2 ** -12]]))
    with matmul_precision(fake, "tf32"):
        assert float((a @ a)[0, 0]) == 1.0   # 1 + 2^-12 is 1 in TF32
    assert float((a @ a)[0, 0]) > 1.0



@pytest.mark.parametrize("kind", gpu_counts.DECODERS)
def test_greedy_decoding_does_no_host_work_per_word(fake, kind):
    """Greedy decoding on the device (issue 23, item 5): the host reads the device once every
    _SYNC_EVERY words ("has every caption ended?") plus once for the results, copies nothing across per
    word, and launches as many kernels for the words 17-24 as for the words 9-16 (the launches of the
    whole search, not only the model's step)."""
    from cs231n.classifiers.captioning import _SYNC_EVERY
    totals = {}
    for words in (_SYNC_EVERY, 2 * _SYNC_EVERY, 3 * _SYNC_EVERY):
        c = {k: v * words for k, v in gpu_counts.count_decoding(kind, words=words).items()}
        assert c["syncs"] == words // _SYNC_EVERY + 1
        assert c["transfers"] == 1 and c["generators"] == 0  # the banned words' mask, once per call
        totals[words] = c["launches"]
    block = totals[2 * _SYNC_EVERY] - totals[_SYNC_EVERY]
    assert totals[3 * _SYNC_EVERY] - totals[2 * _SYNC_EVERY] == block > 0


def test_transformer_decoding_over_buffers_matches_the_growing_cache_with_fewer_launches(fake):
    """The step over key/value buffers (``_step_at``, what sample uses on the GPU) against the step that
    concatenates the cache (``_step``, the host's): the same scores bit for bit on the generic fake, and
    fewer launches at every word."""
    model, features = gpu_counts.make_decoder("transformer")
    buffered = model._decoding_state(features, 6)
    growing = model._decode_state(features)
    words = fake.asarray(np.full(features.shape[0], model._start, dtype=np.int64))
    for t in range(6):
        before = fake_cupy.COUNTS.launches
        buffered, scores_b = model._step_at(t, words, buffered, normalize=False)
        n_buffered = fake_cupy.COUNTS.launches - before
        before = fake_cupy.COUNTS.launches
        growing, scores_g = model._step(words, growing, normalize=False)
        n_growing = fake_cupy.COUNTS.launches - before
        np.testing.assert_array_equal(fake.asnumpy(scores_b), fake.asnumpy(scores_g))
        assert n_buffered < n_growing, t
        words = fake.argmax(scores_g, axis=1)
