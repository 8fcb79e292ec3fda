"""Work buffers reused across training steps: same numbers as fresh arrays, never shared with the caller."""
import numpy as np
import pytest

from cs231n import rnn_layers
from cs231n.classifiers.rnn import CaptioningRNN
from cs231n.workspace import Workspace


def test_workspace_reuses_a_name_and_replaces_it_on_another_shape():
    ws = Workspace()
    a = ws.empty(np, "x", (2, 3), np.float32)
    assert ws.empty(np, "x", (2, 3), np.float32) is a
    assert ws.scope("layer0").empty(np, "x", (2, 3), np.float32) is not a   # another name
    b = ws.empty(np, "x", (4, 3), np.float32)
    assert b.shape == (4, 3) and ws.empty(np, "x", (4, 3), np.float64).dtype == np.float64
    assert ws.nbytes() == 4 * 3 * 8 + 2 * 3 * 4   # one buffer per name: (4, 3) float64 and the scope's
    ws.clear()
    assert ws.nbytes() == 0


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_layers_with_a_workspace_match_fresh_arrays(cell):
    rng = np.random.default_rng(0)
    N, T, D, H = 3, 4, 5, 6
    g = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    args = [rng.standard_normal(s) for s in ((N, T, D), (N, H), (D, g * H), (H, g * H), (g * H,))]
    if cell == "gru":
        args.append(rng.standard_normal(g * H))
    fwd = getattr(rnn_layers, f"{cell}_forward")
    bwd = getattr(rnn_layers, f"{cell}_backward")
    dh = rng.standard_normal((N, T, H))
    h, cache = fwd(*args)
    grads = bwd(dh, cache)
    ws = Workspace()
    for _ in range(2):  # the second call runs in the buffers of the first
        h_ws, cache_ws = fwd(*args, workspace=ws)
        grads_ws = bwd(dh, cache_ws, workspace=ws)
        np.testing.assert_array_equal(h_ws, h)
        for a, b in zip(grads_ws, grads):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_model_loss_returns_fresh_gradients_each_call(cell):
    vocab = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "b": 4}
    np.random.seed(0)
    model = CaptioningRNN(vocab, input_dim=4, wordvec_dim=3, hidden_dim=5, cell_type=cell, dtype=np.float64)
    rng = np.random.default_rng(1)
    features = rng.standard_normal((2, 4))
    captions = np.array([[1, 3, 4, 2, 0], [1, 4, 2, 0, 0]])
    loss1, grads1 = model.loss(features, captions)
    kept = {k: v.copy() for k, v in grads1.items()}
    assert model.workspace.nbytes() > 0
    loss2, grads2 = model.loss(features * 2, captions)
    assert loss2 != loss1
    for k in grads1:                     # the second call did not write into the first's gradients
        np.testing.assert_array_equal(grads1[k], kept[k])
        assert not np.shares_memory(grads1[k], grads2[k])
    loss3, grads3 = model.loss(features, captions)
    assert loss3 == loss1
    for k in grads1:
        np.testing.assert_array_equal(grads3[k], grads1[k])


def test_keep_freed_memory_checks_its_argument_and_reports_whether_it_acted():
    import platform

    from cs231n._alloc import keep_freed_memory

    with pytest.raises(ValueError, match="threshold_bytes"):
        keep_freed_memory(1000)
    result = keep_freed_memory(64 << 20)
    assert isinstance(result, bool)
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert result
