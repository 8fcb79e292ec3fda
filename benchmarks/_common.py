"""Shared benchmark plumbing: run with OpenBLAS's safety overrides unset, time with medians.

Some machines of this project set OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE because old OpenBLAS builds
misbehave on their processors; a current numpy runs about 2x slower with them. Users' machines don't set
them, so a benchmark re-executes itself once with both unset (together, in its own process only) before
numpy is imported, and says so in its output. Tests and CI never change them.
"""
import os
import statistics
import sys
import time

_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def reexec_without_openblas_overrides():
    """Re-run this script without the OpenBLAS overrides; return the names that were unset (if any)."""
    present = [k for k in _OVERRIDES if k in os.environ]
    if present and "_CS231N_BENCH_REEXEC" not in os.environ:
        env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
        env["_CS231N_BENCH_REEXEC"] = ",".join(present)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    return [k for k in os.environ.get("_CS231N_BENCH_REEXEC", "").split(",") if k]


def median_time(fn, repeats=5, warmup=1):
    """Median wall time in seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
