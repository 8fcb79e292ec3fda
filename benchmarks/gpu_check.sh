#!/usr/bin/env bash
# Issue 15's and 23's GPU check in one go: the GPU tests, then benchmarks/bench_gpu.py at N=128 and N=1024
# (our CuPy LSTM training step against PyTorch CUDA, and greedy decoding of 40,000 images), then
# benchmarks/bench_gpu_transformer.py (the Transformer step, float32 and TF32, against PyTorch's
# nn.TransformerDecoderLayer model, and Transformer decoding of 40,000 images), printing their tables.
# Meant to take under 5 minutes; each part has its own time limit (TEST_LIMIT_S, BENCH_LIMIT_S,
# TRANSFORMER_LIMIT_S: 150 + 75 + 70 s at most).
#
#     bash benchmarks/gpu_check.sh          # from the repository root, on a machine with an NVIDIA GPU
#
# It needs Python with numpy, pytest, hypothesis, h5py, requests, Pillow and tqdm (the test suite's
# imports), CuPy for the GPU, and PyTorch with CUDA for the comparison rows (without it the table has
# our rows only). Nothing is fetched from the network. Nothing is installed unless it is needed and
# possible: when CuPy, pytest or hypothesis cannot be imported and a folder .whl/ in the repository root
# holds wheels, those wheels are installed with `pip --no-index --no-deps` into /tmp/cs231n-gpu-site,
# which is put on PYTHONPATH (the system's packages are left alone). PyTorch's CUDA wheels are too big
# to carry that way.
#
# Without CuPy or without a GPU (a laptop, CI): it says which is missing, still runs the CPU parts (the
# same test selection, whose gpu cases are then skipped with their reason, and bench_gpu.py --device cpu
# at small N) and exits with status 3, so that a CPU run is never taken for a GPU check.
# Exit status: 0 everything ran on a GPU and passed; 1 a test or the benchmark failed or timed out;
# 3 no usable GPU (the CPU parts passed). The log is also written to $OUT/gpu_check.log when OUT is set.
#
# On this workplace's device machine (kind nvidia-h200, whose python3 has CuPy 14.2 and torch 2.11, so
# nothing needs carrying), the call is:
#     run(command="PYTHONUNBUFFERED=1 bash benchmarks/gpu_check.sh", timeout_s=420)
# (carry nothing; a fresh machine takes a minute or more to start besides). Should CuPy be missing
# there, download its wheel here as /work/.library/device/README.md says (into .whl/, excluded from
# git), and call with carry=[".whl"].
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
root=$PWD
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
TEST_LIMIT_S=${TEST_LIMIT_S:-150}
BENCH_LIMIT_S=${BENCH_LIMIT_S:-75}
TRANSFORMER_LIMIT_S=${TRANSFORMER_LIMIT_S:-70}

GPU_PROBLEM_PY='
from cs231n.backend import BackendError, import_cupy
try:
    import_cupy()
except BackendError as e:
    print(e)
'

missing_modules() {  # the names among "$@" that $PY cannot import
    local m out=""
    for m in "$@"; do "$PY" -c "import $m" >/dev/null 2>&1 || out="$out $m"; done
    echo "$out"
}

check() {
    PY=${PYTHON:-}
    if [ -z "$PY" ]; then
        if command -v python3 >/dev/null; then PY=python3
        elif command -v python >/dev/null; then PY=python
        else echo "gpu_check: error: no python3 or python on PATH (set PYTHON=/path/to/python)"; return 1
        fi
    fi
    echo "== gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/nvidia-smi: /'
    else
        echo "nvidia-smi: not found"
    fi

    local missing m
    missing=$(missing_modules cupy pytest hypothesis)
    if [ -n "$missing" ] && compgen -G ".whl/*.whl" >/dev/null; then
        echo "installing the carried wheels (.whl/) into /tmp/cs231n-gpu-site for:$missing"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/cs231n-gpu-site .whl/*.whl || echo "gpu_check: installing the wheels failed"
        export PYTHONPATH="$PYTHONPATH:/tmp/cs231n-gpu-site"
        missing=$(missing_modules cupy pytest hypothesis)
    fi
    for m in $missing; do
        if [ "$m" != cupy ]; then
            echo "gpu_check: error: $m cannot be imported by $PY and no wheel of it was carried in .whl/"
            return 1
        fi
    done

    # Is the GPU usable? The package's own check says why not (CuPy missing, no device, a driver error).
    local gpu_problem device
    gpu_problem=$("$PY" -c "$GPU_PROBLEM_PY" 2>&1)
    if [ -z "$gpu_problem" ]; then
        device=gpu
        echo "GPU: usable by CuPy $("$PY" -c 'import cupy; print(cupy.__version__)')"
    else
        device=cpu
        echo "GPU: NOT USABLE: $gpu_problem"
        echo "     running the CPU parts only; this is not a GPU check (exit status 3)"
    fi

    # The GPU tests: every case of the `backend`/`device_backend` fixtures' real-GPU parameter, and
    # tests/test_gpu_kernels.py (its module name matches). The fake-gpu cases belong to the CPU suite.
    # Exit status 5 (nothing selected) counts as a failure: the check would have tested nothing.
    local status=0 rc t0
    echo
    echo "== GPU tests (limit ${TEST_LIMIT_S} s)"
    t0=$SECONDS
    timeout "$TEST_LIMIT_S" "$PY" -m pytest -q -p no:cacheprovider -k "gpu and not fake" --durations=5 tests
    rc=$?
    echo "GPU tests: exit status $rc after $((SECONDS - t0)) s$([ $rc = 124 ] && echo ' (TIMED OUT)')"
    [ $rc = 0 ] || status=1

    echo
    echo "== benchmark (limit ${BENCH_LIMIT_S} s)"
    t0=$SECONDS
    if [ $device = gpu ]; then
        timeout "$BENCH_LIMIT_S" "$PY" benchmarks/bench_gpu.py --device gpu --batch-sizes 128,1024
    else
        timeout "$BENCH_LIMIT_S" "$PY" benchmarks/bench_gpu.py --device cpu --batch-sizes 8 --repeats 2 \
            --decode-images 200
    fi
    rc=$?
    echo "benchmark: exit status $rc after $((SECONDS - t0)) s$([ $rc = 124 ] && echo ' (TIMED OUT)')"
    [ $rc = 0 ] || status=1

    echo
    echo "== Transformer benchmark (limit ${TRANSFORMER_LIMIT_S} s)"
    t0=$SECONDS
    if [ $device = gpu ]; then
        timeout "$TRANSFORMER_LIMIT_S" "$PY" benchmarks/bench_gpu_transformer.py --device gpu
    else
        timeout "$TRANSFORMER_LIMIT_S" "$PY" benchmarks/bench_gpu_transformer.py --device cpu --batch-sizes 2 \
            --repeats 1 --warmup 0 --decode-images 20
    fi
    rc=$?
    echo "Transformer benchmark: exit status $rc after $((SECONDS - t0)) s$([ $rc = 124 ] && echo ' (TIMED OUT)')"
    [ $rc = 0 ] || status=1

    echo
    echo "== launches and syncs per training step (fake CuPy, with the fused kernels' bodies on the CPU)"
    "$PY" benchmarks/gpu_counts.py || status=1

    echo
    if [ $status != 0 ]; then
        echo "== gpu_check: FAILED (see above)"
    elif [ $device = cpu ]; then
        echo "== gpu_check: CPU parts passed; NO GPU was checked: $gpu_problem"
        status=3
    else
        echo "== gpu_check: passed on the GPU"
    fi
    return $status
}

if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    check 2>&1 | tee "$OUT/gpu_check.log"
    exit "${PIPESTATUS[0]}"
fi
check
