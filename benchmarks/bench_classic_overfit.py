"""Time the classic notebooks' overfit cells: the classic call against the same call with the extras on.

The cs231n notebooks overfit 50 training captions with
``CaptioningSolver(model, small_data, update_rule='adam', num_epochs=50, batch_size=25,
optim_config={'learning_rate': 5e-3}, lr_decay=0.95, verbose=True, print_every=10)`` for a vanilla
RNN and for an LSTM (word vectors 256, hidden 512). Until the extras became opt-in, that call
validated 200 val images after every epoch and printed an ETA; ``num_val_images=200,
progress='eta'`` reproduces that behaviour, so one run of this script times "before" and "now",
interleaved, with the same initial weights and minibatches (the loss histories must be identical).

    python benchmarks/bench_classic_overfit.py [--repeats 2]

On a machine shared with other jobs, ``OPENBLAS_NUM_THREADS=1`` keeps BLAS threads from fighting over
the cores (measured here under a load of ~10 on 2 cores: the classic RNN call took 74 s with 2 BLAS
threads, 10 s with 1).

Data: the shapes dataset (``ensure_shapes_dataset()``, ``$CS231N_SHAPES_DIR`` to place it), 50
training captions drawn after ``np.random.seed(231)`` as in the notebooks.
"""
import argparse
import contextlib
import io
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._common import blas_description, reexec_without_openblas_overrides  # noqa: E402

UNSET = reexec_without_openblas_overrides()

import numpy as np  # noqa: E402

from cs231n.captioning_solver import CaptioningSolver  # noqa: E402
from cs231n.classifiers.rnn import CaptioningRNN  # noqa: E402
from cs231n.coco_utils import load_coco_data  # noqa: E402
from cs231n.data.shapes import ensure_shapes_dataset  # noqa: E402

CLASSIC = dict(update_rule="adam", num_epochs=50, batch_size=25, optim_config={"learning_rate": 5e-3},
               lr_decay=0.95, verbose=True, print_every=10)
MODES = {"now (classic call)": {}, "before (val + ETA)": dict(num_val_images=200, progress="eta")}


def run(cell_type, small_data, extra):
    """Train the overfit model once; return (seconds, printed lines, loss history)."""
    np.random.seed(231)
    model = CaptioningRNN(cell_type=cell_type, word_to_idx=small_data["word_to_idx"],
                          input_dim=small_data["train_features"].shape[1], hidden_dim=512, wordvec_dim=256)
    solver = CaptioningSolver(model, small_data, **CLASSIC, **extra)
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        solver.train()
    return time.perf_counter() - t0, out.getvalue().splitlines(), solver.loss_history


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if UNSET:
        print("(re-executed with %s unset)" % ", ".join(UNSET))
    print(blas_description())
    base = ensure_shapes_dataset()
    data = load_coco_data(base_dir=base)
    np.random.seed(231)
    small_data = load_coco_data(base_dir=base, max_train=50)
    print("data: %s (vocabulary %d, %d val images)" % (base, len(data["idx_to_word"]),
                                                       data["val_features"].shape[0]))
    print()
    print("%-5s %-20s %9s %7s  %s" % ("cell", "call", "median s", "lines", "last line"), flush=True)
    for cell_type in ("rnn", "lstm"):
        times = {mode: [] for mode in MODES}
        results = {}
        for _ in range(args.repeats):
            for mode, extra in MODES.items():  # interleaved, so that a load change hits both alike
                seconds, lines, history = run(cell_type, small_data, extra)
                times[mode].append(seconds)
                results[mode] = (lines, history)
                print("      (%s, %s: %.2f s)" % (cell_type, mode, seconds), flush=True)
        histories = [h for _, h in results.values()]
        same = all(h == histories[0] for h in histories)
        for mode in MODES:
            lines = results[mode][0]
            print("%-5s %-20s %9.2f %7d  %s" % (cell_type, mode, statistics.median(times[mode]), len(lines),
                                               lines[-1] if lines else ""), flush=True)
        ratio = statistics.median(times["before (val + ETA)"]) / statistics.median(times["now (classic call)"])
        print("      before / now: %.1fx; loss histories identical: %s" % (ratio, same), flush=True)


if __name__ == "__main__":
    main()
