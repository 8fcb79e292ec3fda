"""Argument checks shared by the public layer and model functions.

Each check raises ``ValueError`` (wrong shape or value) or ``TypeError`` (wrong kind of array) with a
message that names the function, the argument, what was expected and what was seen, so that a user gets
``rnn_forward: Wx should have shape (D, H) = (5, 7), got (5, 28)`` instead of a numpy traceback from a
matrix product deep inside. The checks read shapes and dtypes only, except where a value check is the
point (index ranges), so they cost nothing on the hot path.

Arrays keep their kind: a CuPy (device) array is checked and returned as a device array, never copied
to the host; anything else (numpy arrays, lists, numbers) becomes a numpy array as before.
"""
import numpy as np

from cs231n import gpu_kernels
from cs231n.backend import check_on_device, device_of, get_array_module

# Names of the gate layouts, used to say "this looks like LSTM weights" when columns are a multiple of H.
_GATE_NAMES = {1: "RNN", 3: "GRU", 4: "LSTM"}


def float_array(fn, name, a, ndim):
    """Return ``a`` as a floating ndarray with ``ndim`` dimensions, or raise naming ``name``.

    Floating arrays pass through untouched (no copy, device arrays stay on the device); integer and bool
    arrays are promoted to float64; anything else (object, complex, strings) is a TypeError.
    """
    xp = get_array_module(a)
    a = xp.asarray(a)
    if a.dtype.kind in "biu":
        a = a.astype(xp.float64)
    elif a.dtype.kind != "f":
        raise TypeError(f"{fn}: {name} must be an array of real numbers, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{fn}: {name} must have {ndim} dimensions, got shape {a.shape}")
    return a


def check_finite(fn, name, a, rows=1 << 14):
    """Raise ValueError naming ``name`` and the first NaN or infinite entry of the host array ``a``.

    Checked in slices of ``rows`` rows (along the first axis), so a large array needs no full-size
    temporary.
    """
    a = np.asarray(a)
    if a.ndim == 0:
        a = a.reshape(1)
    for lo in range(0, a.shape[0], rows):
        chunk = a[lo:lo + rows]
        if not np.isfinite(chunk).all():
            first = tuple(int(i) for i in np.argwhere(~np.isfinite(chunk))[0])
            where = (lo + first[0],) + first[1:]
            raise ValueError(f"{fn}: {name} must hold finite numbers, but {name}{list(where)} is "
                             f"{chunk[first]} (NaN or inf there makes every result NaN); check how {name} "
                             f"was computed or loaded")


def index_array(fn, name, a, ndim, upper):
    """Return ``a`` as an integer ndarray of ``ndim`` dimensions with values in ``[0, upper)``.

    A device array stays on the device; its range check reads one flag back to the host (one sync),
    or none inside ``backend.deferred_checks()`` (the solver reads it with the loss), so call this once
    per minibatch, never inside a per-timestep loop.
    """
    xp = get_array_module(a)
    a = xp.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{fn}: {name} must hold integer indices, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{fn}: {name} must have {ndim} dimensions, got shape {a.shape}")
    if a.size:
        def fail():
            lo, hi = int(a.min()), int(a.max())
            bad = lo if lo < 0 else hi
            raise ValueError(f"{fn}: {name} holds index {bad}, outside [0, {upper}) (shape {a.shape})")
        if xp is np:
            if a.min() < 0 or a.max() >= upper:
                fail()
        elif gpu_kernels.fused(xp):
            check_on_device(gpu_kernels.in_range(a, upper), fail)
        else:
            check_on_device((a.min() >= 0) & (a.max() < upper), fail)
    return a


def expect_shape(fn, name, a, dims, hint=""):
    """Raise unless ``a.shape`` equals the values of ``dims``, a tuple of ``(letter, size)`` pairs."""
    want = tuple(size for _, size in dims)
    if a.shape != want:
        letters = ", ".join(letter for letter, _ in dims)
        raise ValueError(f"{fn}: {name} should have shape ({letters}) = {want}, got {a.shape}{hint}")


def gate_hint(a, H, expected_gates):
    """A hint for weights whose last axis is a multiple of H other than the expected one."""
    if H and a.ndim >= 1 and a.shape[-1] % H == 0:
        k = a.shape[-1] // H
        if k != expected_gates and k in _GATE_NAMES:
            return f" (that is {k}H columns: {_GATE_NAMES[k]} weights?)"
    return ""


def check_recurrent_args(fn, x, h, Wx, Wh, b, gates, step):
    """Check the arguments shared by every recurrent forward and return them as float arrays.

    ``x`` is (N, D) for a step and (N, T, D) for a sequence; ``h`` is (N, H); the weights are
    ``Wx`` (D, gH), ``Wh`` (H, gH), ``b`` (gH,) with ``gates`` = g (1 RNN, 3 GRU, 4 LSTM).
    H is read from ``h``, D from ``x``.
    """
    x = float_array(fn, "x", x, 2 if step else 3)
    h_name = "prev_h" if step else "h0"
    h = float_array(fn, h_name, h, 2)
    Wx = float_array(fn, "Wx", Wx, 2)
    Wh = float_array(fn, "Wh", Wh, 2)
    b = float_array(fn, "b", b, 1)
    N, D = x.shape[0], x.shape[-1]
    H = h.shape[1]
    if h.shape[0] != N:
        raise ValueError(f"{fn}: {h_name} has batch size {h.shape[0]} but x has {N} "
                         f"(x {x.shape}, {h_name} {h.shape})")
    gH = gates * H
    g = "" if gates == 1 else str(gates)
    expect_shape(fn, "Wh", Wh, (("H", H), (f"{g}H", gH)), gate_hint(Wh, H, gates))
    expect_shape(fn, "Wx", Wx, (("D", D), (f"{g}H", gH)), gate_hint(Wx, H, gates))
    expect_shape(fn, "b", b, ((f"{g}H", gH),), gate_hint(b, H, gates))
    same_device(fn, (("x", x), (h_name, h), ("Wx", Wx), ("Wh", Wh), ("b", b)))
    return x, h, Wx, Wh, b


def same_device(fn, named_arrays):
    """Raise TypeError unless every array of ``named_arrays`` (``(name, array)`` pairs) is on one device.

    Mixing host (numpy) and device (CuPy) arrays would fail deep inside with CuPy's "Unsupported type";
    this names the two arguments instead.
    """
    first_name, first = named_arrays[0]
    where = device_of(first)
    for name, a in named_arrays[1:]:
        if device_of(a) != where:
            raise TypeError(f"{fn}: {name} is on the {device_of(a)} but {first_name} is on the {where}; "
                            "move them to one device (cs231n.backend.to_device)")


def copy_params(fn, current, params, dtype, where=""):
    """New arrays for a model's parameters: ``params`` checked against ``current`` and cast to ``dtype``.

    ``params`` must have exactly the names of ``current`` (a model's ``params`` dict) and the same
    shapes; otherwise ValueError names the missing, unexpected or misshapen parameters (``where`` is
    added to the message, e.g. ``' in model.npz'``). Returns a dict name -> copied array, each of the
    kind given (numpy stays numpy, a device array is copied on its device).
    """
    missing = sorted(set(current) - set(params))
    extra = sorted(set(params) - set(current))
    if missing or extra:
        raise ValueError(f"{fn}: parameter names{where} do not match: missing {missing}, unexpected {extra}")
    copied = {}
    for name, w in current.items():
        a = get_array_module(params[name]).asarray(params[name])
        if a.shape != w.shape:
            raise ValueError(f"{fn}: {name}{where} should have shape {w.shape}, got {a.shape}")
        copied[name] = a.astype(dtype, copy=True)
    return copied
