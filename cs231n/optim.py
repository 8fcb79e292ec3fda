"""First-order update rules sharing one interface: ``next_w, config = rule(w, dw, config)``.

``config`` is a dict of hyperparameters that also carries the rule's state between calls (a velocity,
moving averages, a step count); missing entries get cs231n's defaults on the first call. The input
arrays are never modified: each rule returns a new ``next_w``. State arrays are kept in the dtype of w.

Every rule computes with the array module of its inputs (numpy, or CuPy for GPU arrays; see
:mod:`cs231n.backend`): ``w`` and ``dw`` must live on the same device, the state is created there, and
state found on the other device (e.g. read from a checkpoint, which always holds host arrays) is
moved to w's device once, on the first update.

- sgd: ``learning_rate`` (1e-2).
- sgd_momentum: ``learning_rate`` (1e-2), ``momentum`` (0.9), state ``velocity``.
- rmsprop: ``learning_rate`` (1e-2), ``decay_rate`` (0.99), ``epsilon`` (1e-8), state ``cache``.
- adam: ``learning_rate`` (1e-3), ``beta1`` (0.9), ``beta2`` (0.999), ``epsilon`` (1e-8), state ``m``,
  ``v`` and the step count ``t``, with bias correction (``t`` is incremented before it is used).

On real CuPy each rule updates a parameter in one fused kernel (``cs231n.gpu_kernels``) with the same
arithmetic, instead of about a dozen array operations; numpy (and anything else) runs the code below.

``rmsprop`` and ``adam`` were ``rmsprop(x, dx, config=None)`` and ``adam(x, dx, config=None)`` in the
classic cs231n code (and ``(w, dw, config=None)`` in later editions): both accept either pair of
keyword names, so ``adam(x=w, dx=dw, config=c)`` and ``adam(w=w, dw=dw, config=c)`` both work.
"""
import functools

import numpy as np

from cs231n import gpu_kernels
from cs231n.backend import device_of, get_array_module, to_device


def _classic_keywords(rule):
    """Let `rule(w, dw, config)` also be called with the classic keyword names ``x`` and ``dx``."""
    @functools.wraps(rule)
    def call(*args, **kwargs):
        for classic, name in (("x", "w"), ("dx", "dw")):
            if classic in kwargs:
                if name in kwargs:
                    raise TypeError(f"{rule.__name__}() got both {classic!r} and {name!r}; they are the same "
                                    f"argument (its classic and its current name)")
                kwargs[name] = kwargs.pop(classic)
        return rule(*args, **kwargs)
    return call


def _start(w, dw, config, **defaults):
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise TypeError(f"config must be a dict or None, got {type(config).__name__}")
    xp = get_array_module(w, dw)
    if xp is not np and device_of(w) != device_of(dw):
        raise TypeError(f"w and dw must be on the same device, got w on the {device_of(w)} and dw on the "
                        f"{device_of(dw)}; move one with cs231n.backend.to_device")
    w = xp.asarray(w)
    dw = xp.asarray(dw)
    if w.shape != dw.shape:
        raise ValueError(f"dw should have the shape of w {w.shape}, got {dw.shape}")
    for key, value in defaults.items():
        config.setdefault(key, value)
    return w, dw, config


def _state(config, key, w):
    """The state array ``config[key]`` on w's device (zeros like w when absent), with its module."""
    xp = get_array_module(w)
    s = config.get(key)
    if s is None:
        return xp.zeros_like(w), xp
    if device_of(s) != device_of(w):
        s = to_device(s, device_of(w))  # e.g. a checkpoint's host state resumed on the GPU: once
    return s, xp


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: ``w - learning_rate * dw``.

    Inputs:
    - w: weights, array of any shape.
    - dw: gradient of the loss with respect to w, same shape.
    - config: dict with ``learning_rate`` (default 1e-2), or None.

    Returns a tuple of (next_w, config).
    """
    w, dw, config = _start(w, dw, config, learning_rate=1e-2)
    if gpu_kernels.optimizer_fusable(get_array_module(w), w, dw):
        return gpu_kernels.sgd(w, dw, config["learning_rate"]), config
    next_w = w - config["learning_rate"] * dw
    return next_w.astype(w.dtype, copy=False), config


def sgd_momentum(w, dw, config=None):
    """SGD with momentum: ``v = momentum * v - learning_rate * dw; w + v``.

    Inputs:
    - w, dw: weights and their gradient, same shape.
    - config: dict with ``learning_rate`` (1e-2), ``momentum`` (0.9) and the state ``velocity``
      (zeros like w on the first call), or None.

    Returns a tuple of (next_w, config).
    """
    w, dw, config = _start(w, dw, config, learning_rate=1e-2, momentum=0.9)
    v, xp = _state(config, "velocity", w)
    if gpu_kernels.optimizer_fusable(xp, w, dw, v):
        next_w, config["velocity"] = gpu_kernels.sgd_momentum(w, dw, v, config["momentum"],
                                                              config["learning_rate"])
        return next_w, config
    v = config["momentum"] * v - config["learning_rate"] * dw
    config["velocity"] = v.astype(w.dtype, copy=False)
    next_w = w + config["velocity"]
    return next_w, config


@_classic_keywords
def rmsprop(w, dw, config=None):
    """RMSProp: a moving average of squared gradients scales each weight's step.

    ``cache = decay_rate * cache + (1 - decay_rate) * dw**2``;
    ``w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    Inputs:
    - w, dw: weights and their gradient, same shape (classic keyword names: x, dx).
    - config: dict with ``learning_rate`` (1e-2), ``decay_rate`` (0.99), ``epsilon`` (1e-8) and the
      state ``cache`` (zeros like w on the first call), or None.

    Returns a tuple of (next_w, config).
    """
    w, dw, config = _start(w, dw, config, learning_rate=1e-2, decay_rate=0.99, epsilon=1e-8)
    cache, xp = _state(config, "cache", w)
    d = config["decay_rate"]
    if gpu_kernels.optimizer_fusable(xp, w, dw, cache):
        next_w, config["cache"] = gpu_kernels.rmsprop(w, dw, cache, d, config["learning_rate"],
                                                      config["epsilon"])
        return next_w, config
    cache = (d * cache + (1 - d) * dw * dw).astype(w.dtype, copy=False)
    config["cache"] = cache
    next_w = w - config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"])
    return next_w.astype(w.dtype, copy=False), config


@_classic_keywords
def adam(w, dw, config=None):
    """Adam with bias correction (Kingma and Ba, 2015).

    ``t += 1``; ``m = beta1 m + (1 - beta1) dw``; ``v = beta2 v + (1 - beta2) dw**2``;
    ``w - learning_rate * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + epsilon)``.

    Inputs:
    - w, dw: weights and their gradient, same shape (classic keyword names: x, dx).
    - config: dict with ``learning_rate`` (1e-3), ``beta1`` (0.9), ``beta2`` (0.999), ``epsilon``
      (1e-8) and the state ``m``, ``v`` (zeros like w) and ``t`` (0) before the first call, or None.

    Returns a tuple of (next_w, config).
    """
    w, dw, config = _start(w, dw, config, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, t=0)
    m, xp = _state(config, "m", w)
    v, _ = _state(config, "v", w)
    b1, b2 = config["beta1"], config["beta2"]
    t = config["t"] + 1
    if gpu_kernels.optimizer_fusable(xp, w, dw, m, v):
        next_w, config["m"], config["v"] = gpu_kernels.adam(w, dw, m, v, config["learning_rate"], b1, b2,
                                                            config["epsilon"], t)
        config["t"] = t
        return next_w, config
    m = (b1 * m + (1 - b1) * dw).astype(w.dtype, copy=False)
    v = (b2 * v + (1 - b2) * (dw * dw)).astype(w.dtype, copy=False)
    m_hat = m / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    next_w = w - config["learning_rate"] * m_hat / (xp.sqrt(v_hat) + config["epsilon"])
    config["m"], config["v"], config["t"] = m, v, t
    return next_w.astype(w.dtype, copy=False), config


# ----------------------------------------------------------------------------------------------------
# Every parameter in one launch (real CuPy): the solver's fast path
# ----------------------------------------------------------------------------------------------------
# The rules above update one parameter per call: on a GPU one fused kernel each, so a model with 57
# parameters costs 57 launches per step. When every parameter has the same dtype and the same
# hyperparameters (the solver gives each a copy of one optim_config and decays them together), the rule's
# kernel can run once over all of them laid end to end: the weights and the state then live in one flat
# buffer each, and the model's and the configs' arrays are views into it (no copies from step to step).

_FLAT_STATE = {"sgd": (), "sgd_momentum": ("velocity",), "rmsprop": ("cache",), "adam": ("m", "v")}


def flat_update_applies(rule_name, params, configs):
    """True when ``update_flat`` can update ``params`` (dict of arrays) with their ``configs`` at once:
    real CuPy with fused kernels, one float dtype, one set of hyperparameters and step count for all,
    and the state of every parameter present or of none."""
    arrays = list(params.values())
    xp = get_array_module(*arrays)
    if rule_name not in _FLAT_STATE or not gpu_kernels.optimizer_fusable(xp, *arrays):
        return False
    state = _FLAT_STATE[rule_name]
    scalars = [{k: v for k, v in configs[p].items() if k not in state} for p in params]
    if any(s != scalars[0] for s in scalars[1:]):
        return False
    present = {key: [configs[p].get(key) is not None for p in params] for key in state}
    if any(any(flags) and not all(flags) for flags in present.values()):
        return False
    return all(configs[p][key].dtype == arrays[0].dtype and get_array_module(configs[p][key]) is xp
               for p in params for key in state if present[key][0])


def _views(flat, like):
    """``flat`` cut into arrays shaped like the dict ``like`` (views, in its order)."""
    out, offset = {}, 0
    for name, a in like.items():
        out[name] = flat[offset:offset + a.size].reshape(a.shape)
        offset += a.size
    return out


def update_flat(rule_name, params, g_flat, configs, flats=None):
    """One step of rule ``rule_name`` for every parameter at once (see ``flat_update_applies``).

    Inputs: ``params`` dict name -> array, ``g_flat`` the gradients laid end to end in the order of
    ``params``, ``configs`` dict name -> the rule's config, and ``flats``: None, or the ``new_flats`` of
    the previous call when ``params`` and the configs' state arrays are still its views (the caller
    knows: then nothing is concatenated).

    Returns (new_params, new_configs, new_flats): the new weights and state as views of new flat arrays,
    and those flat arrays ({"w": weights, state key: state}). The inputs are not modified. Each parameter
    gets exactly what the rule called on it alone would give (the same elementwise kernel).
    """
    xp = get_array_module(g_flat)
    names = list(params)
    config = dict(configs[names[0]])
    if flats is None:
        flats = {"w": xp.concatenate([params[p].ravel() for p in names])}
        for key in _FLAT_STATE[rule_name]:
            if config.get(key) is not None:
                flats[key] = xp.concatenate([configs[p][key].ravel() for p in names])
    w_flat = flats["w"]
    state = {key: flats[key] if key in flats else xp.zeros_like(w_flat) for key in _FLAT_STATE[rule_name]}
    if rule_name == "sgd":
        config.setdefault("learning_rate", 1e-2)
        new_w = gpu_kernels.sgd(w_flat, g_flat, config["learning_rate"])
    elif rule_name == "sgd_momentum":
        config.setdefault("learning_rate", 1e-2)
        config.setdefault("momentum", 0.9)
        new_w, state["velocity"] = gpu_kernels.sgd_momentum(w_flat, g_flat, state["velocity"], config["momentum"],
                                                             config["learning_rate"])
    elif rule_name == "rmsprop":
        for key, value in (("learning_rate", 1e-2), ("decay_rate", 0.99), ("epsilon", 1e-8)):
            config.setdefault(key, value)
        new_w, state["cache"] = gpu_kernels.rmsprop(w_flat, g_flat, state["cache"], config["decay_rate"],
                                                    config["learning_rate"], config["epsilon"])
    else:
        for key, value in (("learning_rate", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("epsilon", 1e-8), ("t", 0)):
            config.setdefault(key, value)
        config["t"] += 1
        new_w, state["m"], state["v"] = gpu_kernels.adam(w_flat, g_flat, state["m"], state["v"],
                                                         config["learning_rate"], config["beta1"],
                                                         config["beta2"], config["epsilon"], config["t"])
    new_params = _views(new_w, params)
    new_configs = {p: {k: v for k, v in config.items() if k not in state} for p in names}
    for key, flat in state.items():
        for p, view in _views(flat, params).items():
            new_configs[p][key] = view
    return new_params, new_configs, dict(state, w=new_w)
