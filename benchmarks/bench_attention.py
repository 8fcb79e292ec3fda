"""Training step of the attention LSTM (CaptioningRNN cell_type='attention') against the plain LSTM, CPU.

    python benchmarks/bench_attention.py              # both presets, R = 4, 16, 49 (about 2 minutes)
    python benchmarks/bench_attention.py --quick      # fewer repetitions, a smoke run
    python benchmarks/bench_attention.py --preset coco --regions 4,16,49 --repeats 9
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_attention.py --clock cpu   # on a shared machine

Measures one training step (``model.loss``: forward and every gradient, float32) of an LSTM captioning
model over one feature vector per image, and of the attention LSTM over R region vectors per image, with
the same sizes otherwise. For each R the two are timed in one process, repetition by repetition with
their order alternating (``interleaved_medians``), so a shared machine slows both alike: read the ratio,
not the absolute times (``--clock cpu`` with one BLAS thread counts only this process's work, the
steadier figure where other jobs compete for the cores). Goal (issue 22): the attention step within 1.3x the LSTM's at R = 4.

Presets: ``coco`` is bench_captioning's COCO scale (N=128, T=16, V=1004, wordvec 256, hidden 512,
input 512); ``default`` is the shapes job of ``python -m cs231n train`` (N=100, wordvec 128, hidden
256) with a small vocabulary and 64 values per region.

The attention layer computes the context's share of the gates as R region products once per sequence
when R < T (then only the weights per step), and as one context product per step otherwise; the
R = 16 = T row is the second way.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._common import (interleaved_medians, machine_header, make_batch, make_vocab,  # noqa: E402
                                reexec_without_openblas_overrides)

unset = reexec_without_openblas_overrides()

import numpy as np  # noqa: E402

from cs231n.classifiers.rnn import CaptioningRNN  # noqa: E402

PRESETS = {
    # name: (N, T, V, W, H, D)
    "coco": (128, 16, 1004, 256, 512, 512),
    "default": (100, 16, 40, 128, 256, 64),
}


def models(N, T, V, W, H, D, R, rng):
    """(lstm model, its features (N, D)), (attention model, its features (N, R, D)) and the captions."""
    features, captions = make_batch(rng, N, T, V, D)
    regions = rng.standard_normal((N, R, D)).astype(np.float32)
    out = []
    for cell, feats in (("lstm", features), ("attention", regions)):
        np.random.seed(0)
        out.append((CaptioningRNN(make_vocab(V), input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type=cell,
                                  dtype=np.float32), feats))
    return out, captions


def main():
    p = argparse.ArgumentParser(description="attention LSTM vs LSTM training step, CPU")
    p.add_argument("--quick", action="store_true", help="3 repetitions")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--preset", choices=sorted(PRESETS) + ["all"], default="all")
    p.add_argument("--regions", default="4,16,49", help="comma-separated R values")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: elapsed time; cpu: this process's CPU time (steadier on a shared machine)")
    a = p.parse_args()
    repeats = 3 if a.quick else a.repeats
    machine_header(unset)
    print(f"float32 training step (loss and every gradient); medians of {repeats} interleaved repetitions "
          f"after a warm-up, {a.clock} clock\n")
    presets = sorted(PRESETS) if a.preset == "all" else [a.preset]
    header = f"{'preset':8} {'R':>3} {'lstm ms':>9} {'attention ms':>13} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for preset in presets:
        N, T, V, W, H, D = PRESETS[preset]
        for R in (int(r) for r in a.regions.split(",")):
            rng = np.random.default_rng(R)
            ((lstm, f1), (att, f2)), captions = models(N, T, V, W, H, D, R, rng)
            medians = interleaved_medians([("lstm", lambda: lstm.loss(f1, captions), None),
                                           ("attention", lambda: att.loss(f2, captions), None)], repeats,
                                          clock=a.clock)
            lm, am = medians["lstm"], medians["attention"]
            print(f"{preset:8} {R:3d} {1e3 * lm:9.1f} {1e3 * am:13.1f} {am / lm:6.2f}", flush=True)
        print(f"  ({preset}: N={N} T={T} V={V} wordvec={W} hidden={H} input={D})")


if __name__ == "__main__":
    main()
