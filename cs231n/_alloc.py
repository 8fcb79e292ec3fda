"""Keep freed memory in the process: raise glibc's mmap and trim thresholds (for the command line).

glibc's ``malloc`` hands blocks above its mmap threshold (128 KiB at first, raised up to 32 MiB as such
blocks are freed) straight to the operating system, and returns the free top of its heap once more than
the trim threshold is free. A training step allocates and frees the same tens of megabytes every
iteration, so each iteration faults them in again, page by page (9,000-21,000 minor faults and about a
tenth of a step on the project's machine). The models avoid most of it by keeping their work buffers
(:mod:`cs231n.workspace`); what remains (optimizer updates, arrays made outside the models) goes with
larger thresholds.

:func:`keep_freed_memory` changes the whole process's allocator, so the library never calls it on
import or from a model: a program that owns its process (``python -m cs231n train``) may call it once at
start-up. It does nothing off glibc (macOS, Windows, musl) and returns whether it changed anything.
"""
import ctypes
import ctypes.util
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

DEFAULT_BYTES = 1 << 30  # 1 GiB: blocks up to this size come from (and return to) the heap


def keep_freed_memory(threshold_bytes=DEFAULT_BYTES):
    """Raise glibc's mmap and trim thresholds to ``threshold_bytes`` for this process.

    Blocks smaller than the threshold then come from the heap and freed memory stays mapped for the
    next allocation instead of being returned to the system and faulted in again. The process may
    keep up to ``threshold_bytes`` of freed memory mapped (its resident size stays near its peak).

    Inputs:
    - threshold_bytes: int, 1 MiB .. 2 GiB - 1: the trim threshold; the mmap threshold is the same
      number capped at 32 MiB, the most glibc accepts on 64-bit systems (larger blocks are still
      mapped one by one).

    Returns True when both thresholds were set, False where the C library is not glibc (nothing is
    changed there).
    """
    if isinstance(threshold_bytes, bool) or not isinstance(threshold_bytes, int) \
            or not (1 << 20) <= threshold_bytes <= (1 << 31) - 1:
        raise ValueError(f"keep_freed_memory: threshold_bytes must be an int from 1 MiB to 2 GiB - 1, "
                         f"got {threshold_bytes!r}")
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    mmap_threshold = min(threshold_bytes, 32 << 20)  # glibc refuses values above HEAP_MAX / 2 (32 MiB)
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, threshold_bytes) == 1
    return ok_mmap and ok_trim


def _glibc_mallopt():
    """glibc's ``mallopt`` as a ctypes function, or None on another C library."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only (musl has no such symbol)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    gnu_get_libc_version.restype = ctypes.c_char_p
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt
