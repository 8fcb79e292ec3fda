"""CuPy's ElementwiseKernel on the CPU: the CUDA body compiled by g++ and run over numpy arrays.

The bodies of the package's fused kernels (``cs231n/gpu_kernels.py``) are plain C++ over scalars and
indexed arrays, so the same text can be compiled for the host. ``HostElementwiseKernel`` takes exactly
what ``cupy.ElementwiseKernel`` takes and runs it like CuPy does, as far as the package uses it:

- parameters ``[raw] TYPE name``, TYPE a type placeholder (``T``, ``U``, ...: bound from the dtypes of
  the arrays given for it; a mismatch is a TypeError) or a dtype name (``float32``, ``float64``,
  ``int64``, ``int32``, ``bool``); an argument that is a Python or numpy scalar is passed as a scalar;
- the loop index ``i`` runs over the broadcast shape of the non-raw arrays (``_ind.size()`` is its size);
  non-raw inputs are read at ``i``, non-raw outputs are references at ``i``; raw arrays are indexed by
  the body itself (C-contiguous flat index, as the package's bodies assume);
- outputs left out of the call are allocated (broadcast shape, the bound type) and returned.

What it cannot check: CuPy's own compiler (nvcc/NVRTC) and launch rules, and the float rounding of the
GPU (FMA contraction is switched off here, so results equal a numpy evaluation in the same order more
closely than a GPU's do). Those are checked on a GPU by ``benchmarks/gpu_check.sh``.

Compiled libraries are cached by the hash of their source under the temporary directory, so each body
is compiled once per machine (about half a second), not once per test.
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np

HEADER = """
#include <cmath>
#include <cstddef>
#define __device__
using std::tanh; using std::exp; using std::log; using std::sqrt; using std::fabs; using std::fmax;
using std::fmin; using std::pow; using std::erf; using std::log1p; using std::expm1; using std::isfinite;
using std::max; using std::min;
template <typename V> struct Raw {
  V* p;
  V& operator[](ptrdiff_t k) const { return p[k]; }
};
struct Ind { ptrdiff_t n; ptrdiff_t size() const { return n; } };
"""

_C_TYPES = {np.dtype(np.float32): ("float", ctypes.c_float), np.dtype(np.float64): ("double", ctypes.c_double),
            np.dtype(np.int64): ("long long", ctypes.c_longlong), np.dtype(np.int32): ("int", ctypes.c_int),
            np.dtype(np.bool_): ("bool", ctypes.c_bool), np.dtype(np.uint64): ("unsigned long long",
                                                                               ctypes.c_ulonglong)}


def available():
    """True when a C++ compiler is there to run the bodies."""
    return shutil.which("g++") is not None


def parse_params(spec):
    """'raw T a, T c, int64 H' -> [(raw, type, name), ...]"""
    if not spec.strip():
        return []
    return [(item.split()[0] == "raw", item.split()[-2], item.split()[-1]) for item in spec.split(",")]


def _compile(source):
    cache = os.path.join(tempfile.gettempdir(), "cs231n-host-kernels-%d" % os.getuid())
    os.makedirs(cache, exist_ok=True)
    lib = os.path.join(cache, hashlib.sha1(source.encode()).hexdigest() + ".so")
    if not os.path.exists(lib):
        cpp = lib[:-3] + ".%d.cpp" % os.getpid()
        with open(cpp, "w") as f:
            f.write(source)
        tmp = lib + ".%d" % os.getpid()
        done = subprocess.run(["g++", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-o", tmp, cpp],
                              capture_output=True, text=True)
        os.remove(cpp)
        if done.returncode != 0:
            raise RuntimeError("g++ could not compile the kernel body:\n" + done.stderr[-3000:])
        os.replace(tmp, lib)  # atomic: tests running side by side never load a half-written library
    return ctypes.CDLL(lib)


class HostElementwiseKernel:
    """``cupy.ElementwiseKernel(in_params, out_params, operation, name, preamble=...)`` over numpy arrays."""

    def __init__(self, in_params, out_params, operation, name="kernel", preamble="", **_options):
        self.in_params, self.out_params = parse_params(in_params), parse_params(out_params)
        self.operation, self.name, self.preamble = operation, name, preamble
        self._libs = {}  # call signature -> compiled function

    def _bind(self, args):
        """The type placeholders' dtypes, the broadcast shape, and which arguments are scalars."""
        params = self.in_params + self.out_params
        bound, shapes, scalar = {}, [], []
        for (raw, typ, pname), a in zip(params, args):
            is_scalar = not isinstance(a, np.ndarray)
            scalar.append(is_scalar)
            if typ in ("T", "U", "V", "S") or len(typ) == 1:
                if is_scalar:
                    raise TypeError(f"{self.name}: {pname} of type {typ} must be an array")
                if bound.setdefault(typ, a.dtype) != a.dtype:
                    raise TypeError(f"{self.name}: type {typ} is {bound[typ]} but {pname} is {a.dtype}")
            if not raw and not is_scalar:
                shapes.append(a.shape)
        return bound, (np.broadcast_shapes(*shapes) if shapes else ()), scalar

    def _dtype(self, typ, bound):
        return bound[typ] if typ in bound else np.dtype(typ)

    def _function(self, bound, scalar):
        key = (tuple(sorted((k, str(v)) for k, v in bound.items())), tuple(scalar))
        fn = self._libs.get(key)
        if fn is not None:
            return fn
        params = self.in_params + self.out_params
        n_in = len(self.in_params)
        c_args, lines = ["ptrdiff_t _size"], ["  const Ind _ind{_size};"]
        for k, ((raw, typ, pname), is_scalar) in enumerate(zip(params, scalar)):
            ctype = _C_TYPES[self._dtype(typ, bound)][0]
            if is_scalar:
                c_args.append(f"{ctype} {pname}")
            else:
                c_args.append(f"{ctype}* _p{k}")
                if raw:
                    lines.append(f"  Raw<{ctype}> {pname}{{_p{k}}};")
        lines.append("  for (ptrdiff_t i = 0; i < _size; ++i) {")
        for k, ((raw, typ, pname), is_scalar) in enumerate(zip(params, scalar)):
            if not raw and not is_scalar:
                ctype = _C_TYPES[self._dtype(typ, bound)][0]
                lines.append(f"    {ctype}& {pname} = _p{k}[i];" if k >= n_in
                             else f"    const {ctype} {pname} = _p{k}[i];")
        typedefs = [f"typedef {_C_TYPES[dt][0]} {name};" for name, dt in bound.items()]
        source = "\n".join([HEADER, *typedefs, self.preamble, f'extern "C" void {self.name}({", ".join(c_args)}) {{',
                            *lines, self.operation, "  }", "}"])
        fn = self._libs[key] = getattr(_compile(source), self.name)
        return fn

    def __call__(self, *args, size=None):
        params = self.in_params + self.out_params
        if len(args) not in (len(self.in_params), len(params)):
            raise TypeError(f"{self.name}: takes {len(self.in_params)} inputs (and optionally "
                            f"{len(self.out_params)} outputs), got {len(args)} arguments")
        args = list(args)
        given_outputs = len(args) == len(params)
        bound, shape, scalar = self._bind(args)
        if not given_outputs:  # allocate the outputs, like CuPy
            for raw, typ, pname in self.out_params:
                if raw:
                    raise TypeError(f"{self.name}: raw output {pname} must be given")
                args.append(np.empty(shape, dtype=self._dtype(typ, bound)))
            bound, shape, scalar = self._bind(args)
        fn = self._function(bound, scalar)
        c_args, copies = [ctypes.c_ssize_t(int(np.prod(shape)))], []
        for k, ((raw, typ, pname), a, is_scalar) in enumerate(zip(params, args, scalar)):
            dtype = self._dtype(typ, bound)
            if is_scalar:
                c_args.append(_C_TYPES[dtype][1](a.item() if isinstance(a, np.generic) else a))
                continue
            if a.dtype != dtype:
                raise TypeError(f"{self.name}: {pname} should be {dtype}, got {a.dtype}")
            if raw:
                buf = np.ascontiguousarray(a)
            elif k < len(self.in_params):
                buf = np.ascontiguousarray(np.broadcast_to(a, shape))
            else:
                if a.shape != shape:
                    raise ValueError(f"{self.name}: output {pname} has shape {a.shape}, the loop {shape}")
                buf = np.ascontiguousarray(a)
            if buf is not a and (raw or k >= len(self.in_params)):
                copies.append((a, buf))  # written through a contiguous copy: copied back below
            c_args.append(buf.ctypes.data_as(ctypes.c_void_p))
        fn(*c_args)
        for a, buf in copies:
            a[...] = buf
        outs = tuple(args[len(self.in_params):])
        return outs[0] if len(outs) == 1 else outs


class HostReductionKernel:
    """``cupy.ReductionKernel(in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name,
    reduce_type=...)`` over numpy arrays, called as ``kernel(*inputs, axis=None, keepdims=False)``.

    Like CuPy: the non-raw inputs are broadcast together; for each output element ``a`` starts at
    ``identity`` and takes ``a = reduce_expr`` with ``b = map_expr`` of every element of the reduced
    axes (in order), then ``post_map_expr`` sets the outputs (``_in_ind.size()`` is the size of the broadcast input and
    ``_out_ind.size()`` the number of outputs, as in CuPy). Outputs
    are allocated (``out=`` for the first output is also accepted). Type placeholders are bound from the
    inputs; ``reduce_type`` defaults to the first input's type.
    """

    def __init__(self, in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name="reduce",
                 reduce_type=None, preamble="", **_options):
        self.in_params, self.out_params = parse_params(in_params), parse_params(out_params)
        self.map_expr, self.reduce_expr, self.post_map_expr = map_expr, reduce_expr, post_map_expr
        self.identity, self.name, self.reduce_type, self.preamble = identity, name, reduce_type, preamble
        self._libs = {}

    def __call__(self, *args, axis=None, keepdims=False, out=None):
        if len(args) != len(self.in_params):
            raise TypeError(f"{self.name}: takes {len(self.in_params)} inputs, got {len(args)}")
        bound, scalar = {}, []
        for (raw, typ, pname), a in zip(self.in_params, args):
            is_scalar = not isinstance(a, np.ndarray)
            scalar.append(is_scalar)
            if not is_scalar and np.dtype(_dtype_or_none(typ) or a.dtype) != a.dtype:
                raise TypeError(f"{self.name}: {pname} should be {typ}, got {a.dtype}")
            if not is_scalar and _dtype_or_none(typ) is None and bound.setdefault(typ, a.dtype) != a.dtype:
                raise TypeError(f"{self.name}: type {typ} is {bound[typ]} but {pname} is {a.dtype}")
        shape = np.broadcast_shapes(*[a.shape for a, s in zip(args, scalar) if not s])
        ndim = len(shape)
        axes = tuple(range(ndim)) if axis is None else tuple(
            sorted(x % ndim for x in ((axis,) if isinstance(axis, int) else axis)))
        keep = tuple(x for x in range(ndim) if x not in axes)
        out_shape = tuple(1 if x in axes else shape[x] for x in range(ndim)) if keepdims else \
            tuple(shape[x] for x in keep)
        outer = int(np.prod([shape[x] for x in keep]))
        inner = int(np.prod([shape[x] for x in axes]))
        reduce_type = self.reduce_type or self.in_params[0][1]
        key = (tuple(sorted((k, str(v)) for k, v in bound.items())), tuple(scalar))
        fn = self._libs.get(key)
        if fn is None:
            fn = self._libs[key] = self._compile(bound, scalar, reduce_type)
        c_args = [ctypes.c_ssize_t(outer), ctypes.c_ssize_t(inner)]
        for (raw, typ, pname), a, is_scalar in zip(self.in_params, args, scalar):
            dtype = bound.get(typ) or np.dtype(typ)
            if is_scalar:
                c_args.append(_C_TYPES[dtype][1](a.item() if isinstance(a, np.generic) else a))
                continue
            moved = np.moveaxis(np.broadcast_to(a, shape), keep + axes, tuple(range(ndim)))
            buf = np.ascontiguousarray(moved)
            c_args.append(buf.ctypes.data_as(ctypes.c_void_p))
            c_args.append(buf)  # kept alive until the call (dropped below)
        outs = []
        for k, (raw, typ, pname) in enumerate(self.out_params):
            dtype = bound.get(typ) or np.dtype(typ)
            o = np.empty(out_shape, dtype=dtype)
            outs.append(o)
            c_args.append(o.ctypes.data_as(ctypes.c_void_p))
        fn(*[a for a in c_args if not isinstance(a, np.ndarray)])
        if out is not None:
            out[...] = outs[0]
            outs[0] = out
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _compile(self, bound, scalar, reduce_type):
        def ctype(typ):
            return _C_TYPES[bound.get(typ) or np.dtype(typ)][0]
        c_args, reads = ["ptrdiff_t _outer", "ptrdiff_t _inner"], []
        for k, ((raw, typ, pname), is_scalar) in enumerate(zip(self.in_params, scalar)):
            if is_scalar:
                c_args.append(f"{ctype(typ)} {pname}")
            else:
                c_args.append(f"const {ctype(typ)}* _p{k}")
                reads.append(f"      const {ctype(typ)} {pname} = _p{k}[_o * _inner + _j];")
        writes = []
        for k, (raw, typ, pname) in enumerate(self.out_params):
            c_args.append(f"{ctype(typ)}* _q{k}")
            writes.append(f"    {ctype(typ)}& {pname} = _q{k}[_o];")
        typedefs = [f"typedef {_C_TYPES[dt][0]} {name};" for name, dt in bound.items()]
        rtype = ctype(reduce_type)
        source = "\n".join([
            HEADER, *typedefs, f"typedef {rtype} _type_reduce;", self.preamble,
            # as in CuPy: the reduction and the post-map see the accumulator as `a` (and `b`), whatever
            # the inputs are called
            f"#define _REDUCE(a, b) ({self.reduce_expr})", f"#define _POST_MAP(a) {{ {self.post_map_expr}; }}",
            f'extern "C" void {self.name}({", ".join(c_args)}) {{',
            "  const Ind _in_ind{_outer * _inner}, _out_ind{_outer};",
            "  for (ptrdiff_t _o = 0; _o < _outer; ++_o) {",
            f"    _type_reduce _acc = ({rtype})({self.identity});",
            "    for (ptrdiff_t _j = 0; _j < _inner; ++_j) {", *reads,
            f"      const _type_reduce _b = ({rtype})({self.map_expr});",
            "      _acc = _REDUCE(_acc, _b);",
            "    }", *writes, "    _POST_MAP(_acc);", "  }", "}"])
        return getattr(_compile(source), self.name)


def _dtype_or_none(typ):
    try:
        return np.dtype(typ) if len(typ) > 1 else None
    except TypeError:
        return None
