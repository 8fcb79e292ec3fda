"""The classic demonstration that the LSTM equations are right: hand-set weights computing running parity.

With large-magnitude weights every sigmoid gate is (to ~1e-9) exactly 0 or 1 and every tanh is +-1, so
the LSTM becomes a small logic circuit. Two constructions, each checked on all 2 + 4 + ... + 256 bit
strings of length 1 to 8, at every time step (the running parity, i.e. the XOR of the bits so far),
through both ``lstm_forward`` and a loop of ``lstm_step_forward`` (to read the cell state too).

Gate columns are i, f, o, g (SPEC section 1), so a layer that mixes the gate order up, or that does not
compute c' = f*c + i*g, h' = o*tanh(c'), fails here.
"""
import numpy as np
import pytest

from cs231n.rnn_layers import lstm_forward, lstm_step_forward

TANH1 = np.tanh(1.0)


def all_bit_strings(L):
    """All 2**L bit strings of length L as an int array of shape (2**L, L)."""
    return (np.arange(2 ** L)[:, None] >> np.arange(L)[None, :]) & 1


def switch_weights(K=40.0):
    """One hidden unit (H = 1) whose cell flips sign on a 1 and holds on a 0.

    Cell states: c = 0 at the start and c = -1 mean "even so far", c = +1 means "odd so far".
    The output gate is always open, so h = tanh(c), in {0, -tanh 1, +tanh 1}.
    - input gate  i = sig(K (x - 1/2)):  open (1) when the bit is 1, shut (0) when it is 0;
    - forget gate f = sig(K (1/2 - x)):  keep the cell when the bit is 0, drop it when it is 1;
    - output gate o = sig(K):            always 1;
    - candidate   g = tanh(K (theta - h)) with theta = tanh(1)/2: the *negated* parity, +1 when the
      parity so far is even (h <= 0 < theta) and -1 when it is odd (h = tanh 1 > theta).
    So a 0 gives c' = c (hold) and a 1 gives c' = g = the flipped parity: c' encodes x XOR parity.
    """
    theta = TANH1 / 2.0
    #              i        f        o     g
    Wx = np.array([[K, -K, 0.0, 0.0]])  # (D, 4H) = (1, 4)
    Wh = np.array([[0.0, 0.0, 0.0, -K]])  # (H, 4H) = (1, 4)
    b = np.array([-K / 2.0, K / 2.0, K, K * theta])  # (4H,)
    return Wx, Wh, b


def switch_parity_from_h(h):
    return h[..., 0] > TANH1 / 2.0


def switch_parity_from_c(c):
    return c[..., 0] > 0.5


def detector_weights(K=20.0):
    """Two hidden units (H = 2) that detect combinations of (bit, previous parity) and forget the rest.

    Unit A computes "x OR p" and unit B computes "x AND p", where p is the parity before this bit; then
    x XOR p = A - B (the OR minus the AND). Every step forgets the old cell (f = 0), writes the
    candidate (i = 1) and shows it (o = 1), so c_A, c_B are +-1 (true/false) and h = tanh(c) = +-tanh 1.
    The previous parity is read back linearly from h: p = (h_A - h_B) / (2 tanh 1), which is 0 for the
    initial h0 = 0 as well. The candidates threshold the integer x + p in {0, 1, 2}:
        g_A = tanh(K (x + p - 1/2))   (+1 when x + p >= 1: OR)
        g_B = tanh(K (x + p - 3/2))   (+1 when x + p >= 2: AND)
    The parity after the step is (c_A - c_B) / 2 in the cell, (h_A - h_B) / (2 tanh 1) in the output.
    """
    H = 2
    Wx = np.zeros((1, 4 * H))  # (D, 4H), column blocks i, f, o, g of width H = 2
    Wh = np.zeros((H, 4 * H))  # (H, 4H)
    b = np.zeros(4 * H)  # (4H,)
    i, f, o, g = (slice(k * H, (k + 1) * H) for k in range(4))
    b[i] = K  # input gates open
    b[f] = -K  # forget gates shut
    b[o] = K  # output gates open
    Wx[0, g] = K  # both candidates see K x
    Wh[0, g] = K / (2.0 * TANH1)  # ... plus K p, with p = (h_A - h_B) / (2 tanh 1)
    Wh[1, g] = -K / (2.0 * TANH1)
    b[g] = [-K / 2.0, -3.0 * K / 2.0]  # thresholds 1/2 (OR) and 3/2 (AND)
    return Wx, Wh, b


def detector_parity_from_h(h):
    return (h[..., 0] - h[..., 1]) / (2.0 * TANH1) > 0.5


def detector_parity_from_c(c):
    return (c[..., 0] - c[..., 1]) / 2.0 > 0.5


CONSTRUCTIONS = {
    "switch": (switch_weights, switch_parity_from_h, switch_parity_from_c),
    "detector": (detector_weights, detector_parity_from_h, detector_parity_from_c),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CONSTRUCTIONS))
def test_lstm_computes_running_parity_of_all_bit_strings(name, dtype):
    make_weights, parity_from_h, parity_from_c = CONSTRUCTIONS[name]
    Wx, Wh, b = (a.astype(dtype) for a in make_weights())
    H = Wh.shape[0]
    checked = 0
    for L in range(1, 9):
        bits = all_bit_strings(L)  # (2**L, L)
        want = np.cumsum(bits, axis=1) % 2 == 1  # running parity (XOR of the prefix), (N, T)
        x = bits[:, :, None].astype(dtype)  # (N, T, D = 1)
        h0 = np.zeros((bits.shape[0], H), dtype=dtype)

        h, _ = lstm_forward(x, h0, Wx, Wh, b)  # (N, T, H)
        np.testing.assert_array_equal(parity_from_h(h), want)

        prev_h, prev_c = h0, np.zeros_like(h0)
        for t in range(L):
            prev_h, prev_c, _ = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
            np.testing.assert_array_equal(parity_from_c(prev_c), want[:, t])
            np.testing.assert_array_equal(parity_from_h(prev_h), want[:, t])
        checked += bits.shape[0]
    assert checked == sum(2 ** L for L in range(1, 9)) == 510


@pytest.mark.parametrize("name", sorted(CONSTRUCTIONS))
def test_parity_circuit_states_are_saturated(name):
    """The gates really are logic: cell states sit within 1e-6 of their ideal values."""
    make_weights, _, _ = CONSTRUCTIONS[name]
    Wx, Wh, b = make_weights()
    bits = all_bit_strings(8)
    x = bits[:, :, None].astype(np.float64)
    H = Wh.shape[0]
    prev_h, prev_c = np.zeros((bits.shape[0], H)), np.zeros((bits.shape[0], H))
    parity = np.zeros(bits.shape[0], dtype=int)
    for t in range(8):
        prev_h, prev_c, _ = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        parity ^= bits[:, t]
        if name == "switch":
            # After the first 1 the cell is +1 for odd and -1 for even; before it, still 0.
            seen_one = bits[:, :t + 1].any(axis=1)
            ideal = np.where(parity == 1, 1.0, np.where(seen_one, -1.0, 0.0))[:, None]
        else:
            prev_parity = np.cumsum(bits[:, :t], axis=1)[:, -1] % 2 if t else np.zeros_like(parity)
            x_t = bits[:, t]
            ideal = np.stack([np.where(x_t | prev_parity, 1.0, -1.0),
                              np.where(x_t & prev_parity, 1.0, -1.0)], axis=1)
        np.testing.assert_allclose(prev_c, ideal, atol=1e-6)
        np.testing.assert_allclose(prev_h, np.tanh(ideal), atol=1e-6)
