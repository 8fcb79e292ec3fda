"""Per-step loop vs whole-sequence LSTM forward+backward, float32.

    python benchmarks/bench_layers.py [--N 128 --T 16 --D 256 --H 512 --repeats 5]

The per-step baseline calls lstm_step_forward / lstm_step_backward T times, as a first implementation
would; the whole-sequence functions hoist the input projection and the weight gradients into single
matrix products and reuse preallocated buffers. Prints the median time of each and the speedup.
"""
import argparse
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._common import blas_description, median_time, reexec_without_openblas_overrides  # noqa: E402

unset = reexec_without_openblas_overrides()

import numpy as np  # noqa: E402

from cs231n.rnn_layers import (lstm_backward, lstm_forward, lstm_step_backward,  # noqa: E402
                               lstm_step_forward)


def per_step(x, h0, Wx, Wh, b, dh):
    N, T, _ = x.shape
    h, c = h0, np.zeros_like(h0)
    caches = []
    for t in range(T):
        h, c, cache = lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        caches.append(cache)
    dx = np.empty_like(x)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dprev_h, dprev_c = np.zeros_like(h0), np.zeros_like(h0)
    for t in reversed(range(T)):
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t] + dprev_h, dprev_c, caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def whole(x, h0, Wx, Wh, b, dh):
    _, cache = lstm_forward(x, h0, Wx, Wh, b)
    return lstm_backward(dh, cache)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, default=128)
    p.add_argument("--T", type=int, default=16)
    p.add_argument("--D", type=int, default=256)
    p.add_argument("--H", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    f32 = np.float32
    x = rng.standard_normal((a.N, a.T, a.D)).astype(f32)
    h0 = rng.standard_normal((a.N, a.H)).astype(f32)
    Wx = (rng.standard_normal((a.D, 4 * a.H)) / np.sqrt(a.D)).astype(f32)
    Wh = (rng.standard_normal((a.H, 4 * a.H)) / np.sqrt(a.H)).astype(f32)
    b = np.zeros(4 * a.H, f32)
    dh = rng.standard_normal((a.N, a.T, a.H)).astype(f32)
    ref = per_step(x, h0, Wx, Wh, b, dh)
    got = whole(x, h0, Wx, Wh, b, dh)
    worst = max(float(np.max(np.abs(r - g)) / (np.max(np.abs(r)) + 1e-12)) for r, g in zip(ref, got))
    t_step = median_time(lambda: per_step(x, h0, Wx, Wh, b, dh), a.repeats)
    t_whole = median_time(lambda: whole(x, h0, Wx, Wh, b, dh), a.repeats)
    print(f"machine: {platform.machine()} {platform.processor() or ''} cores={os.cpu_count()}; numpy {np.__version__}")
    print(blas_description())
    if unset:
        print(f"(ran with {', '.join(unset)} unset, as on users' machines)")
    print(f"LSTM forward+backward, float32, N={a.N} T={a.T} D={a.D} H={a.H}, median of {a.repeats}")
    print(f"  per-step loop      {t_step * 1e3:8.1f} ms")
    print(f"  whole-sequence     {t_whole * 1e3:8.1f} ms")
    print(f"  speedup            {t_step / t_whole:8.2f}x   (max relative difference of results {worst:.1e})")


if __name__ == "__main__":
    main()
