"""The quality bar of the main job: the default `train` run against the same run without images.

    python benchmarks/bench_train.py [--seed 0] [--out runs/bench_train] [extra train flags...]

Runs `python -m cs231n train` twice with identical settings, once as is and once with
`--zero-features` (every image feature replaced by zeros, so the model can only learn the language of
the captions), each in its own process, and prints a table of the wall time, val BLEU-1, BLEU-4, CIDEr
(multi-reference, greedy), the fraction of distinct captions generated on val and the scene accuracy
(fraction of val captions entirely right, and per attribute; see cs231n.data.shapes.accuracy), plus the
bars: blind BLEU-4 <= 60% and blind CIDEr <= 50% of the real run's, real scene accuracy >= 90%. The shapes dataset is
generated (and timed) first if it is not cached yet. Machine facts are printed with the table.
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


def run_train(out, seed, extra, blind):
    cmd = [sys.executable, "-m", "cs231n", "train", "--seed", str(seed), "--out", str(out), "--quiet"] + extra
    if blind:
        cmd.append("--zero-features")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    summary = json.loads((out / "scores.json").read_text())
    return wall, summary


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench_train")
    a, extra = p.parse_known_args()
    out = Path(a.out)
    sys.path.insert(0, str(ROOT))
    from cs231n.data.shapes import SCENE_METRICS, ensure_shapes_dataset

    t0 = time.perf_counter()
    ensure_shapes_dataset()
    gen = time.perf_counter() - t0
    rows = {}
    for name, blind in (("images", False), ("zero features", True)):
        rows[name] = run_train(out / name.replace(" ", "_"), a.seed, extra, blind)
    print(f"\nmachine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}; seed {a.seed}; extra flags: {' '.join(extra) or 'none'}")
    print(f"shapes dataset ready in {gen:.1f} s (0 when cached)")
    scene_keys = SCENE_METRICS
    header = (f"{'run':14} {'wall s':>7} {'train s':>8} {'BLEU-1':>7} {'BLEU-4':>7} {'CIDEr':>7} {'distinct':>9} "
              + " ".join(f"{k[len('scene_'):]:>11}" for k in scene_keys))
    print(header)
    print("-" * len(header))
    for name, (wall, s) in rows.items():
        v = s["val_scores"]
        scene = s.get("val_scene_accuracy", {})
        print(f"{name:14} {wall:7.0f} {s['train_seconds']:8.0f} {v['Bleu_1']:7.3f} {v['Bleu_4']:7.3f} "
              f"{v['CIDEr']:7.3f} {s['distinct_caption_fraction']:9.1%} "
              + " ".join(f"{scene[k]:11.1%}" if k in scene else f"{'-':>11}" for k in scene_keys))
    real, blind = rows["images"][1]["val_scores"], rows["zero features"][1]["val_scores"]
    r_bleu = blind["Bleu_4"] / real["Bleu_4"]
    r_cider = blind["CIDEr"] / real["CIDEr"]
    print(f"\nblind / real: BLEU-4 {r_bleu:.0%} (bar <= 60%), CIDEr {r_cider:.0%} (bar <= 50%); "
          f"real BLEU-4 {real['Bleu_4']:.3f} (bar >= 0.5), real wall time {rows['images'][0]:.0f} s (bar <= 300)")
    scene = rows["images"][1].get("val_scene_accuracy")
    if scene is not None:
        print(f"real scene accuracy {scene['scene_right']:.1%} of val captions entirely right (bar >= 90%, "
              f"stretch 97%); image-blind "
              f"{rows['zero features'][1]['val_scene_accuracy']['scene_right']:.1%}")


if __name__ == "__main__":
    main()
