"""Shared benchmark plumbing: run with OpenBLAS's safety overrides unset, time with medians.

Some machines of this project set OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE because old OpenBLAS builds
misbehave on their processors; a current numpy runs about 2x slower with them. Users' machines don't set
them, so a benchmark re-executes itself once with both unset (together, in its own process only) before
numpy is imported, and says so in its output. Tests and CI never change them.
"""
import os
import platform
import statistics
import sys
import time

_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def reexec_without_openblas_overrides():
    """Re-run this script without the OpenBLAS overrides; return the names that were unset (if any)."""
    present = [k for k in _OVERRIDES if k in os.environ]
    if present and "_CS231N_BENCH_REEXEC" not in os.environ:
        env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
        env["_CS231N_BENCH_REEXEC"] = ",".join(present)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    return [k for k in os.environ.get("_CS231N_BENCH_REEXEC", "").split(",") if k]


def median_time(fn, repeats=5, warmup=1, clock="wall"):
    """Median time in seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs (``clock``: "wall"
    or "cpu", see interleaved_medians)."""
    now = CLOCKS[clock]
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = now()
        fn()
        times.append(now() - t0)
    return statistics.median(times)


def interleaved_medians(contenders, repeats, inner=1, warmup=1, clock="wall"):
    """Median seconds per call of each contender, repetitions interleaved so all see the same machine state.

    ``contenders`` is a list of ``(name, step, sync)``: ``step()`` is timed ``inner`` times in a row per
    repetition, between two ``sync()`` calls (a GPU's synchronize; None on the CPU). The order of the
    contenders alternates from one repetition to the next. ``clock`` is "wall" (elapsed time) or "cpu"
    (this process's CPU time, all threads: on a machine shared with other jobs, time spent waiting for
    a core is not counted, so with one BLAS thread per contender the ratio reflects the work done).
    Returns {name: median seconds per step}.
    """
    now = CLOCKS[clock]
    contenders = [(name, step, sync or (lambda: None)) for name, step, sync in contenders]
    for _, step, sync in contenders:
        for _ in range(warmup):
            step()
        sync()
    times = {name: [] for name, _, _ in contenders}
    for r in range(repeats):
        for name, step, sync in (contenders if r % 2 == 0 else contenders[::-1]):
            sync()
            t0 = now()
            for _ in range(inner):
                step()
            sync()
            times[name].append((now() - t0) / inner)
    return {name: statistics.median(ts) for name, ts in times.items()}


def blas_description():
    """One line naming the BLAS numpy uses and its core type, from threadpoolctl when installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS: (install threadpoolctl to report the kernel)"
    parts = []
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            parts.append(f"{info.get('internal_api')} {info.get('version')} core={info.get('architecture')} "
                         f"threads={info.get('num_threads')}")
    return "BLAS: " + ("; ".join(parts) or "unknown")


def make_vocab(V):
    """A vocabulary of V words: the four special tokens, then ``w0``, ``w1``, ..."""
    words = ["<NULL>", "<START>", "<END>", "<UNK>"] + [f"w{i}" for i in range(V - 4)]
    return {w: i for i, w in enumerate(words)}


def make_batch(rng, N, T, V, D):
    """A COCO-like minibatch: float32 features (N, D) and int32 captions (N, T + 1) of <START>,
    8-15 words drawn from ``rng``, <END>, then <NULL> padding."""
    import numpy as np

    captions = np.zeros((N, T + 1), dtype=np.int32)
    for n in range(N):
        k = rng.integers(8, 16)
        captions[n, 0] = 1
        captions[n, 1:k + 1] = rng.integers(4, V, size=k)
        captions[n, k + 1] = 2
    features = rng.standard_normal((N, D)).astype(np.float32)
    return features, captions


def matmul_gflops(rng, shapes, repeats, clock="wall"):
    """Best float32 GEMM rate (GFLOP/s) over ``shapes``, a list of (m, k, n) like the step's products."""
    import numpy as np

    best = 0.0
    for m, k, n in shapes:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        t = median_time(lambda: a @ b, repeats=max(3, repeats), warmup=2, clock=clock)
        best = max(best, 2 * m * k * n / t / 1e9)
    return best


def blas_threads():
    """The number of threads numpy's BLAS uses (threadpoolctl), else OPENBLAS_NUM_THREADS or the core
    count; the PyTorch contender is given as many, so the two compete on equal terms."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count()))
    counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return counts[0] if counts else os.cpu_count()


def minor_faults_per_call(fn, repeats=3):
    """Median minor page faults (``resource.getrusage``) of one ``fn()`` call, after one warm-up call."""
    import resource

    fn()
    counts = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        fn()
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return statistics.median(counts)


def faults_in_fresh_process(script, args):
    """Minor page faults per step measured by ``python script *args --faults-only`` in a new process.

    glibc raises its mmap threshold as large blocks are freed, so a process where PyTorch (or another
    model) has already run faults less than a user's fresh one would; the figure is taken where only
    the measured model has run. The script prints the count as its last line.
    """
    import subprocess

    out = subprocess.run([sys.executable, script, *args, "--faults-only"], check=True, capture_output=True,
                         text=True).stdout
    return float(out.split()[-1])


def with_gradient_products(products):
    """The forward products ``(batch, m, k, n, calls)`` and, for each, the two of its backward pass:
    ``dA = dC B^T`` (m, n, k) and ``dB = A^T dC`` (k, m, n)."""
    out = list(products)
    for batch, m, k, n, calls in products:
        out += [(batch, m, n, k, calls), (batch, k, m, n, calls)]
    return out


def products_flops(products):
    """FLOPs (2 per multiply-add) of a list of ``(batch, m, k, n, calls)`` matrix products."""
    return sum(2 * batch * m * k * n * calls for batch, m, k, n, calls in products)


def gemm_floor(rng, products, repeats, dtype="float32", clock="wall"):
    """Seconds that ``products`` (a list of ``(batch, m, k, n, calls)``: ``calls`` products of a
    (batch, m, k) by a (batch, k, n) array, batch 1 meaning plain 2-D) take at their own measured rates:
    each distinct shape timed alone (median), times its calls. A step's time minus this floor is what
    is not matrix products (elementwise work, copies, Python)."""
    import numpy as np

    total, seen = 0.0, {}
    for batch, m, k, n, calls in products:
        key = (batch, m, k, n)
        if key not in seen:
            lead = (batch,) if batch > 1 else ()
            a = rng.standard_normal(lead + (m, k)).astype(dtype)
            b = rng.standard_normal(lead + (k, n)).astype(dtype)
            out = np.empty(lead + (m, n), dtype=dtype)
            seen[key] = median_time(lambda: np.matmul(a, b, out=out), repeats=max(5, repeats), warmup=2,
                                    clock=clock)
        total += calls * seen[key]
    return total


def gpu_description():
    """One line naming the GPU and the CUDA, CuPy, torch and cuDNN versions (CuPy must be importable)."""
    import cupy

    rt = cupy.cuda.runtime
    props = rt.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]

    def cuda_version(v):
        return f"{v // 1000}.{v % 1000 // 10}"

    line = (f"GPU: {name}, {props['multiProcessorCount']} SMs, {props['totalGlobalMem'] / 2 ** 30:.0f} GiB; "
            f"CUDA runtime {cuda_version(rt.runtimeGetVersion())}, driver {cuda_version(rt.driverGetVersion())}; "
            f"CuPy {cupy.__version__}")
    try:
        import torch
    except ImportError:
        return line + "; torch absent"
    if not torch.cuda.is_available():
        return line + f"; torch {torch.__version__} without CUDA"
    return line + (f"; torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})")


def machine_header(unset, gpu=False):
    """Print the machine, Python/numpy/torch versions, BLAS and unset overrides, and with ``gpu`` the GPU
    line of ``gpu_description``; return whether torch imports."""
    import numpy as np

    try:
        import torch
    except ImportError:
        torch = None
    print(f"machine: {platform.machine()} {platform.processor() or ''} cores={os.cpu_count()}, "
          f"python {platform.python_version()}, numpy {np.__version__}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", torch absent"))
    print(blas_description())
    print(f"OpenBLAS overrides: {'unset ' + ', '.join(unset) if unset else 'none were set'}")
    if gpu:
        print(gpu_description())
    return torch is not None


def step_benchmark_args(description, defaults, argv=None):
    """Options of the GPU step benchmarks (bench_gpu, bench_gpu_transformer), checked.

    ``defaults`` maps each device ('gpu', 'cpu') to its batch_sizes (text), repeats, inner, warmup,
    decode_images and decode_repeats; options left out take the chosen device's. Returns the argparse
    namespace with ``batch_sizes`` as a list of ints.
    """
    import argparse

    def per_device(key):
        return "; ".join(f"{device} {values[key]}" for device, values in defaults.items())

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", choices=("cpu", "gpu"), default="gpu",
                   help="gpu: CuPy against PyTorch CUDA; cpu: numpy against PyTorch CPU at small N")
    p.add_argument("--batch-sizes", help=f"comma-separated N ({per_device('batch_sizes')})")
    p.add_argument("--repeats", type=int, help=f"timed repetitions per contender ({per_device('repeats')})")
    p.add_argument("--inner", type=int, help=f"steps per timed repetition ({per_device('inner')})")
    p.add_argument("--warmup", type=int, help=f"untimed steps per contender first ({per_device('warmup')})")
    p.add_argument("--decode-images", type=int, help=f"images to caption ({per_device('decode_images')})")
    p.add_argument("--decode-repeats", type=int, help=f"timed decodings ({per_device('decode_repeats')})")
    args = p.parse_args(argv)
    for key, value in defaults[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        args.batch_sizes = [int(n) for n in args.batch_sizes.split(",")]
    except ValueError:
        p.error(f"--batch-sizes must be comma-separated integers, got {args.batch_sizes!r}")
    for key in ("repeats", "inner", "decode_images", "decode_repeats"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    if args.warmup < 0 or min(args.batch_sizes) < 1:
        p.error("--warmup must be >= 0 and every batch size >= 1")
    return args
