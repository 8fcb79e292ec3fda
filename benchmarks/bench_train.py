"""The quality bar of the main job: the default `train` run, other models, and the image-blind baseline.

    python benchmarks/bench_train.py [--seed 0 [1 ...]] [--out runs/bench_train]
                                     [--models attention lstm gru rnn transformer transformer-regions]
                                     [--jobs 1] [extra train flags...]

Runs `python -m cs231n train` once per model in ``--models`` and seed in ``--seed`` (default:
``attention``, the main job: the LSTM that attends over the image's regions; ``lstm``, ``gru`` and
``rnn`` are ``--cell-type``,
``transformer`` is ``--model transformer`` (one memory token per image) and ``transformer-regions`` is
``--model transformer --regions`` (one memory token per region)), each with the main job's other
settings, plus the first model again with ``--zero-features`` (every image feature replaced by zeros,
so the model can only learn the language of the captions), each in its own process, and prints a table
of the wall and training time, the epoch kept (chosen by train on its held-out training images), val
BLEU-1, BLEU-4, CIDEr (multi-reference, greedy), the fraction of
distinct captions generated on val and the scene accuracy (fraction of val captions entirely right, and
per attribute, and the fraction of captions that bind an attribute to the wrong object, "misbound"; see
cs231n.data.shapes.accuracy), plus the bars of the main job: blind BLEU-4 <= 60% and
blind CIDEr <= 50% of the real run's, real scene accuracy >= 90% in <= 300 s of training.

``--jobs N`` runs N trainings at a time (each with one BLAS thread), for a table of scores when the
machine's time matters more than the timings; the timings of such a run are not those of an idle
machine, and the table says so. The shapes dataset is generated (and timed) first if it is not cached.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_FLAGS = {"lstm": ["--cell-type", "lstm"], "gru": ["--cell-type", "gru"], "rnn": ["--cell-type", "rnn"],
               "attention": ["--cell-type", "attention"], "transformer": ["--model", "transformer"],
               "transformer-regions": ["--model", "transformer", "--regions"]}


def run_train(out, seed, flags, env):
    cmd = [sys.executable, "-m", "cs231n", "train", "--seed", str(seed), "--out", str(out), "--quiet"] + flags
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - t0
    summary = json.loads((out / "scores.json").read_text())
    return wall, summary


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="one run of every model per seed")
    p.add_argument("--out", default="runs/bench_train")
    p.add_argument("--models", nargs="+", choices=sorted(MODEL_FLAGS), default=["attention"],
                   help="models to train (the first is also trained image-blind, with the first seed)")
    p.add_argument("--jobs", type=int, default=1, help="trainings at a time (timings then not idle)")
    a, extra = p.parse_known_args()
    out = Path(a.out)
    if out.exists() and any(out.iterdir()):
        p.error(f"--out {out} already holds runs; give another --out (nothing is overwritten)")
    sys.path.insert(0, str(ROOT))
    from cs231n.data.shapes import SCENE_METRICS, ensure_shapes_dataset

    t0 = time.perf_counter()
    ensure_shapes_dataset()
    gen = time.perf_counter() - t0
    env = dict(os.environ)
    if a.jobs > 1:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
    named = (lambda m, seed: m) if len(a.seed) == 1 else (lambda m, seed: f"{m} seed {seed}")
    runs = [(named(m, seed), seed, MODEL_FLAGS[m] + extra) for seed in a.seed for m in a.models]
    main_name, blind_name = runs[0][0], f"{a.models[0]} zero features"
    runs.append((blind_name, a.seed[0], MODEL_FLAGS[a.models[0]] + extra + ["--zero-features"]))
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        futures = {name: pool.submit(run_train, out / name.replace(" ", "_"), seed, flags, env)
                   for name, seed, flags in runs}
        rows = {name: f.result() for name, f in futures.items()}
    print(f"\nmachine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}; seeds {a.seed}; extra flags: {' '.join(extra) or 'none'}; "
          f"{a.jobs} training(s) at a time" + (" (times are NOT those of an idle machine)" if a.jobs > 1 else ""))
    print(f"shapes dataset ready in {gen:.1f} s (0 when cached)")
    scene_keys = SCENE_METRICS
    header = (f"{'run':24} {'wall s':>7} {'train s':>8} {'kept':>7} {'BLEU-1':>7} {'BLEU-4':>7} {'CIDEr':>7} "
              f"{'distinct':>9} "
              + " ".join(f"{k[len('scene_'):]:>11}" for k in scene_keys))
    print(header)
    print("-" * len(header))
    for name, (wall, s) in rows.items():
        v = s["val_scores"]
        scene = s.get("val_scene_accuracy", {})
        kept = f"{s.get('kept_epoch', '?')}/{s.get('epochs_run', '?')}"
        print(f"{name:24} {wall:7.0f} {s['train_seconds']:8.0f} {kept:>7} {v['Bleu_1']:7.3f} {v['Bleu_4']:7.3f} "
              f"{v['CIDEr']:7.3f} {s['distinct_caption_fraction']:9.1%} "
              + " ".join(f"{scene[k]:11.1%}" if k in scene else f"{'-':>11}" for k in scene_keys))
    main_wall, main_summary = rows[main_name]
    real, blind = main_summary["val_scores"], rows[blind_name][1]["val_scores"]
    print(f"\nblind / real ({a.models[0]}): BLEU-4 {blind['Bleu_4'] / real['Bleu_4']:.0%} (bar <= 60%), "
          f"CIDEr {blind['CIDEr'] / real['CIDEr']:.0%} (bar <= 50%); real BLEU-4 {real['Bleu_4']:.3f} "
          f"(bar >= 0.5), real training time {main_summary['train_seconds']:.0f} s (bar <= 300)")
    scene = main_summary.get("val_scene_accuracy")
    if scene is not None:
        print(f"real scene accuracy {scene['scene_right']:.1%} of val captions entirely right (bar >= 90%, "
              f"stretch 97%); image-blind "
              f"{rows[blind_name][1]['val_scene_accuracy']['scene_right']:.1%}")


if __name__ == "__main__":
    main()
