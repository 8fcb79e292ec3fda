"""The Transformer beside the LSTM default on the shapes dataset, at the same training-time budget.

    python benchmarks/bench_shapes_transformer.py [--seed 0] [--out runs/bench_shapes_transformer]
                                                  [--budget SECONDS] [--max-train N]

Runs, back to back in one script (so both see the same machine):
  1. the main job, `python -m cs231n train` (LSTM, word vectors 256, hidden 512, Adam 5e-3 x0.7 per
     epoch, batch 100, 5 epochs), in its own process; its training time is the budget (unless
     --budget gives one);
  2. a CaptioningTransformer (W = 256, 4 heads, 2 layers, feed-forward 2048, dropout 0.1, Adam 1e-3
     x0.7 per epoch, batch 100, gradient norm clipped at 5, the same seed and val subset), trained
     epoch by epoch by CaptioningSolver until the next epoch would overrun the budget; its parameters
     with the best val CIDEr are kept, as `train` does.
Both are then scored on the whole val split with greedy captions (val BLEU-4, CIDEr, the fraction of
distinct captions). --max-train passes the same caption subsample to both (a reduced run).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench_shapes_transformer")
    p.add_argument("--budget", type=float, help="training seconds for the Transformer (default: the LSTM's)")
    p.add_argument("--max-train", type=int, help="training captions for both (default: all)")
    a = p.parse_args()
    out = Path(a.out)
    if out.exists():
        sys.exit(f"error: {out} exists; choose another --out (runs are never overwritten)")

    import numpy as np

    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.classifiers.transformer import CaptioningTransformer
    from cs231n.coco_utils import load_coco_data
    from cs231n.data.shapes import ensure_shapes_dataset
    from cs231n.metrics import score_model

    base = ensure_shapes_dataset()
    extra = ["--max-train", str(a.max_train)] if a.max_train else []

    # 1. The LSTM main job, as a user runs it.
    cmd = [sys.executable, "-m", "cs231n", "train", "--seed", str(a.seed), "--out", str(out / "lstm"),
           "--quiet"] + extra
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    lstm_wall = time.perf_counter() - t0
    lstm = json.loads((out / "lstm" / "scores.json").read_text())
    budget = a.budget or lstm["train_seconds"]

    # 2. The Transformer on the same data, seed and schedule, for the same training time.
    np.random.seed(a.seed)  # as train does: before loading, so --max-train draws the same captions
    data = load_coco_data(base_dir=str(base), max_train=a.max_train)
    np.random.seed(a.seed)
    model = CaptioningTransformer(data["word_to_idx"], data["train_features"].shape[1], 256, num_heads=4,
                                  num_layers=2)

    class BudgetSolver(CaptioningSolver):
        """Stops at the end of the epoch after which another epoch would overrun the budget."""

        def _epoch_end(self):
            stop = super()._epoch_end()
            elapsed = time.perf_counter() - self.t_start
            per_epoch = elapsed / self.epoch
            return stop or elapsed + per_epoch > budget

    solver = BudgetSolver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                          lr_decay=0.7, batch_size=100, num_epochs=100, print_every=10 ** 9, verbose=True,
                          seed=a.seed, num_val_images=200, grad_clip=5.0)
    solver.t_start = time.perf_counter()
    solver.train()
    t_seconds = time.perf_counter() - solver.t_start
    if solver.best_params:
        model.params.update(solver.best_params)
    model.training = False
    (out / "transformer").mkdir(parents=True)
    model.save(out / "transformer" / "model.npz")
    scores, captions = score_model(model, data, split="val", return_captions=True)
    distinct = len(set(captions.values())) / max(1, len(captions))
    transformer = {"val_scores": scores, "distinct_caption_fraction": distinct, "train_seconds": t_seconds,
                   "epochs_run": solver.epoch}
    (out / "transformer" / "scores.json").write_text(json.dumps(transformer, indent=2) + "\n")

    print(f"\nmachine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, numpy {np.__version__}; seed {a.seed}; "
          f"training captions {data['train_captions'].shape[0]}; budget {budget:.0f} s")
    header = f"{'model':12} {'epochs':>6} {'train s':>8} {'BLEU-1':>7} {'BLEU-4':>7} {'CIDEr':>7} {'distinct':>9}"
    print(header)
    print("-" * len(header))
    for name, s in (("lstm", lstm), ("transformer", transformer)):
        v = s["val_scores"]
        print(f"{name:12} {s['epochs_run']:6d} {s['train_seconds']:8.0f} {v['Bleu_1']:7.3f} {v['Bleu_4']:7.3f} "
              f"{v['CIDEr']:7.3f} {s['distinct_caption_fraction']:9.1%}")
    print(f"(the LSTM run's wall time with loading and scoring: {lstm_wall:.0f} s)")


if __name__ == "__main__":
    main()
