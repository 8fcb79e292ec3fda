"""The CaptioningTransformer training step and greedy decoding on a GPU (CuPy), against PyTorch on the same GPU.

    python benchmarks/bench_gpu_transformer.py --device gpu   # N=128 and N=1024, 40,000 decoded images
    python benchmarks/bench_gpu_transformer.py --device cpu   # numpy against torch CPU at small N: a check

Measures, in one process (benchmarks/gpu_check.sh runs it after the LSTM benchmark):
  a. one training step of CaptioningTransformer (T=16 so captions of 17 tokens, V=1004, W=256, 2 layers,
     4 heads, feed-forward 2048, input D=512, dropout 0.1, float32): ``model.loss`` and Adam on every
     parameter (bench_gpu.py's step);
  b. the same step with ``precision='tf32'`` (cs231n.backend.matmul_precision), GPU only;
  c. the same model from torch.nn modules (bench_transformer.py's: nn.TransformerDecoderLayer, post-norm,
     ReLU, dropout 0.1) with torch.optim.Adam, in float32 (TF32 off) and, GPU only, with TF32 on. Its
     weights are PyTorch's own initialization (not ours): the two compute the same operations at the same
     shapes, which is what the timing compares;
  d. greedy decoding (``model.sample``, max_length 16) of 40,000 images' features, host in, host out.
(a)-(c) are interleaved repetition by repetition; medians of --inner steps between two device
synchronizations, after warm-up steps that also compile CuPy's kernels.

Not measured here (not implemented): a CUDA-graph-captured step. Launch and sync counts per step are
printed without a GPU by benchmarks/gpu_counts.py.
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._common import (interleaved_medians, machine_header, make_batch, make_vocab,  # noqa: E402
                                reexec_without_openblas_overrides, step_benchmark_args)

unset = reexec_without_openblas_overrides() if __name__ == "__main__" else []

import numpy as np  # noqa: E402

from benchmarks import bench_transformer as bt  # noqa: E402
from benchmarks.bench_gpu import LEARNING_RATE, import_torch, our_step_fn, set_tf32, synchronizer  # noqa: E402
from cs231n.backend import BackendError, matmul_precision, to_device, to_numpy, xp_for  # noqa: E402
from cs231n.classifiers.transformer import CaptioningTransformer  # noqa: E402

MAX_LENGTH = 16
DEFAULTS = {
    "gpu": dict(batch_sizes="128,1024", repeats=7, inner=3, warmup=3, decode_images=40_000, decode_repeats=2),
    "cpu": dict(batch_sizes="8", repeats=2, inner=1, warmup=1, decode_images=200, decode_repeats=1),
}


def new_model(seed=0):
    np.random.seed(seed)
    return CaptioningTransformer(make_vocab(bt.V), bt.D, bt.W, num_heads=bt.HEADS, num_layers=bt.LAYERS,
                                 dim_feedforward=bt.F, dropout=bt.P)


def bench_step(N, device, torch, args, rng):
    """Medians (seconds) of each contender's training step at batch size N."""
    features, captions = make_batch(rng, N, bt.T, bt.V, bt.D)
    f, c = to_device(features, device), to_device(captions, device)
    sync = synchronizer(device)
    contenders = [("ours", our_step_fn(new_model().to(device), f, c), sync)]
    if device == "gpu":
        xp = xp_for("gpu")
        plain = our_step_fn(new_model().to(device), f, c)

        def tf32_step():
            with matmul_precision(xp, "tf32"):
                return plain()
        contenders.append(("ours TF32", tf32_step, sync))
    if torch is not None:
        tsync = synchronizer(device, torch)
        for name, tf32 in (("torch fp32", False),) + ((("torch TF32", True),) if device == "gpu" else ()):
            step = bt.torch_step_fn(features, captions, device=device, adam_lr=LEARNING_RATE)

            def timed(step=step, tf32=tf32):
                set_tf32(torch, tf32)
                return step()
            contenders.append((name, timed, tsync))
    try:
        return interleaved_medians(contenders, args.repeats, args.inner, args.warmup)
    finally:
        if torch is not None:
            set_tf32(torch, False)


def bench_decode(device, args, rng):
    """Median seconds to caption ``args.decode_images`` images greedily, host features to host captions."""
    model = new_model(1).to(device)
    features = rng.standard_normal((args.decode_images, bt.D)).astype(np.float32)
    sync = synchronizer(device)

    def decode(feats):
        captions = to_numpy(model.sample(to_device(feats, device), max_length=MAX_LENGTH))
        sync()
        return captions

    decode(features[:min(1000, args.decode_images)])  # warm-up (compiles the kernels), untimed
    times = []
    for _ in range(args.decode_repeats):
        t0 = time.perf_counter()
        captions = decode(features)
        times.append(time.perf_counter() - t0)
    if captions.shape != (args.decode_images, MAX_LENGTH):
        raise SystemExit(f"error: decoding returned captions of shape {captions.shape}")
    return statistics.median(times)


def parse_args(argv=None):
    return step_benchmark_args(__doc__.split("\n")[0], DEFAULTS, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.device == "gpu":
        try:
            xp_for("gpu")
        except BackendError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    machine_header(unset, gpu=args.device == "gpu")
    torch = import_torch(args.device)
    rng = np.random.default_rng(0)
    print(f"Transformer captioning training step (loss, every gradient, Adam on every parameter): T={bt.T} "
          f"V={bt.V} W={bt.W} layers={bt.LAYERS} heads={bt.HEADS} feed-forward={bt.F} D={bt.D} dropout={bt.P}, "
          f"float32; medians of {args.repeats} interleaved repetitions of {args.inner} step(s) after "
          f"{args.warmup} warm-up step(s); device: {args.device}")
    steps = {N: bench_step(N, args.device, torch, args, rng) for N in args.batch_sizes}
    decode_s = bench_decode(args.device, args, rng)
    ours = "ours (CuPy)" if args.device == "gpu" else "ours (numpy)"
    names = [("ours", ours), ("ours TF32", "ours, precision tf32"), ("torch fp32", "PyTorch float32"),
             ("torch TF32", "PyTorch TF32")]
    width = 34
    print()
    print(f"{'ms per step':{width}}" + "".join(f"{f'N={N}':>12}" for N in args.batch_sizes))
    print("-" * (width + 12 * len(args.batch_sizes)))
    for key, label in names:
        if any(key in steps[N] for N in args.batch_sizes):
            print(f"{label:{width}}" + "".join(f"{1e3 * steps[N][key]:12.2f}" if key in steps[N] else f"{'-':>12}"
                                                for N in args.batch_sizes))
    for mine, theirs in (("ours", "torch fp32"), ("ours TF32", "torch TF32")):
        if all(mine in steps[N] and theirs in steps[N] for N in args.batch_sizes):
            print(f"{mine + ' / ' + theirs:{width}}" + "".join(
                f"{steps[N][mine] / steps[N][theirs]:11.2f}x" for N in args.batch_sizes))
    print(f"\ngreedy decoding of {args.decode_images:,} images with the Transformer (max_length {MAX_LENGTH}, "
          f"host features in, host captions out): {decode_s:.2f} s, median of {args.decode_repeats}")
    if args.device == "gpu":
        at = steps.get(1024, {})
        if "torch fp32" in at:
            ratio = at["ours"] / at["torch fp32"]
            print(f"goal (issue 23) step N=1024 <= 1.2x PyTorch float32: {'met' if ratio <= 1.2 else 'MISSED'} "
                  f"({ratio:.2f}x)")
        if args.decode_images == 40_000:
            print(f"goal (issue 23) 40,000 greedy captions < 0.5 s: {'met' if decode_s < 0.5 else 'MISSED'} "
                  f"({decode_s:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
