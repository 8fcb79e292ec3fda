"""The search space of a sweep: checked entries (:func:`make_space`), command-line text
(:func:`parse_option`), Tune's sampling objects and one-line descriptions of a trial's configuration."""
import json
import math
import os

import numpy as np

from cs231n.sweep.models import MODEL_KINDS
from cs231n.sweep.session import require_ray

# The space a plain `python -m cs231n sweep` searches (the `train` command's defaults are inside it).
DEFAULT_SPACE = {
    "model": {"choice": ["rnn", "lstm", "gru"]},
    "lr": {"loguniform": [1e-3, 2e-2]},
    "hidden_dim": {"choice": [128, 256, 512]},
    "wordvec_dim": {"choice": [128, 256]},
    "batch_size": {"choice": [50, 100]},
    "lr_decay": {"choice": [0.7, 0.85, 1.0]},
    "grad_clip": {"choice": [0, 5.0]},
    "seed": 0,
    "num_heads": 4,  # the Transformer's; it must divide wordvec_dim
    "num_layers": 2,
}

_DISTRIBUTIONS = ("choice", "grid", "loguniform", "uniform")
_RANGE_KIND = {"lr": "loguniform", "lr_decay": "uniform"}  # what "LO:HI" means for an option


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


# key -> (what a value must be, check(value) -> ok, converter for command-line text)
_KEYS = {
    "model": ("a model kind: " + ", ".join(MODEL_KINDS), lambda v: isinstance(v, str) and v in MODEL_KINDS, str),
    "lr": ("a positive learning rate", lambda v: _is_number(v) and v > 0, float),
    "hidden_dim": ("a positive int", lambda v: _is_int(v) and v > 0, int),
    "wordvec_dim": ("a positive int", lambda v: _is_int(v) and v > 0, int),
    "batch_size": ("a positive int", lambda v: _is_int(v) and v > 0, int),
    "lr_decay": ("a number in (0, 1]", lambda v: _is_number(v) and 0 < v <= 1, float),
    "grad_clip": ("a number >= 0 (0: no clipping)", lambda v: _is_number(v) and v >= 0, float),
    "seed": ("an int >= 0", lambda v: _is_int(v) and v >= 0, int),
    "num_heads": ("a positive int", lambda v: _is_int(v) and v > 0, int),
    "num_layers": ("a positive int", lambda v: _is_int(v) and v > 0, int),
}


def _check_value(key, value, where):
    what, ok, _ = _KEYS[key]
    if not ok(value):
        raise ValueError(f"search space: {where} must be {what}, got {value!r}")


def _normalize_entry(key, spec):
    """One entry of a space, checked: a constant, or a one-key dict naming a distribution."""
    if key not in _KEYS:
        raise ValueError(f"search space: unknown key {key!r}; known keys: {', '.join(_KEYS)}")
    if not isinstance(spec, dict):
        _check_value(key, spec, key)
        return spec
    if len(spec) != 1 or next(iter(spec)) not in _DISTRIBUTIONS:
        raise ValueError(f"search space: {key} must be a constant or a dict with one key out of "
                         f"{', '.join(_DISTRIBUTIONS)}, got {spec!r}")
    kind, args = next(iter(spec.items()))
    if not isinstance(args, (list, tuple)) or not args:
        raise ValueError(f"search space: {key}: {kind} takes a non-empty list, got {args!r}")
    args = list(args)
    if kind in ("choice", "grid"):
        for v in args:
            _check_value(key, v, f"every {kind} value of {key}")
        return {kind: args}
    if len(args) != 2:
        raise ValueError(f"search space: {key}: {kind} takes [low, high], got {args!r}")
    if key not in _RANGE_KIND:
        raise ValueError(f"search space: {key} takes a constant, choice or grid, not a {kind} range")
    for v in args:
        _check_value(key, v, f"the {kind} bounds of {key}")
    if not args[0] < args[1]:
        raise ValueError(f"search space: {key}: {kind} needs low < high, got {args!r}")
    return {kind: [float(args[0]), float(args[1])]}


def make_space(space=None, **options):
    """A checked search space: ``DEFAULT_SPACE`` updated by ``space`` and then by ``options``.

    Each value is a constant (every trial uses it) or a dict with one key:
    ``{"choice": [...]}`` (drawn uniformly), ``{"grid": [...]}`` (every value, times ``num_samples``),
    ``{"loguniform": [low, high]}`` (``lr`` only) or ``{"uniform": [low, high]}`` (``lr_decay`` only).
    Keys: ``model`` (rnn, lstm, gru, transformer), ``lr`` (Adam's learning rate), ``hidden_dim``, ``wordvec_dim``,
    ``batch_size``, ``lr_decay`` (per epoch), ``grad_clip`` (global norm; 0 = off), ``seed`` (for the
    weights and the minibatches; the same for all trials unless you make it a choice or grid), and
    the Transformer's ``num_heads`` (it must divide ``wordvec_dim``) and ``num_layers``; ``hidden_dim``
    is the recurrent models' only.
    Keys left out keep the default space's entries.

    Inputs:
    - space: None, a dict as above, or the path of a JSON file holding one.
    - options: more entries (None values are ignored), e.g. from the command line.

    Returns a new dict. Raises ValueError naming the key for unknown keys or bad values.
    """
    merged = dict(DEFAULT_SPACE)
    if isinstance(space, (str, os.PathLike)):
        with open(space, encoding="utf-8") as f:
            try:
                space = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"search space file {os.fspath(space)} is not valid JSON: {e}") from e
    if space is not None:
        if not isinstance(space, dict):
            raise TypeError(f"space must be a dict or a JSON file path, got {type(space).__name__}")
        merged.update(space)
    merged.update({k: v for k, v in options.items() if v is not None})
    space = {key: _normalize_entry(key, spec) for key, spec in merged.items()}
    if "transformer" in _values(space["model"]):
        bad = [(w, h) for w in _values(space["wordvec_dim"]) for h in _values(space["num_heads"]) if w % h]
        if bad:
            raise ValueError(f"search space: the Transformer needs num_heads to divide wordvec_dim; "
                             f"wordvec_dim {bad[0][0]} with num_heads {bad[0][1]} does not")
    return space


def _values(spec):
    """The values a constant, choice or grid entry can take."""
    return next(iter(spec.values())) if isinstance(spec, dict) else [spec]


def parse_option(key, text):
    """A space entry from command-line text: ``a,b,c`` is a choice, ``LO:HI`` a range, else a constant.

    ``LO:HI`` is log-uniform for ``lr`` and uniform for ``lr_decay``; other keys take lists or single
    values. Values are converted to the key's type (e.g. ``--hidden-dim 128,256``).
    """
    if key not in _KEYS:
        raise ValueError(f"unknown search-space key {key!r}")
    convert = _KEYS[key][2]

    def one(t):
        try:
            return convert(t.strip())
        except ValueError:
            raise ValueError(f"--{key.replace('_', '-')}: cannot read {t!r} as {_KEYS[key][0]}") from None

    if ":" in text:
        if key not in _RANGE_KIND:
            raise ValueError(f"--{key.replace('_', '-')} takes a value or a comma-separated list, not a "
                             f"range ({text!r})")
        low, _, high = text.partition(":")
        return {_RANGE_KIND[key]: [one(low), one(high)]}
    values = [one(t) for t in text.split(",")]
    return values[0] if len(values) == 1 else {"choice": values}


def _tune_space(space):
    """The checked space as Tune's sampling objects."""
    tune = require_ray()
    out = {}
    for key, spec in space.items():
        if not isinstance(spec, dict):
            out[key] = spec
            continue
        kind, args = next(iter(spec.items()))
        if kind == "choice":
            out[key] = tune.choice(args)
        elif kind == "grid":
            out[key] = tune.grid_search(args)
        elif kind == "loguniform":
            out[key] = tune.loguniform(*args)
        else:
            out[key] = tune.uniform(*args)
    return out


def describe_config(config):
    """A short one-line description of a trial's configuration, e.g. ``lstm lr=3.2e-03 H=256 ...``."""
    parts = [str(config.get("model", "?")), "lr=%.2e" % config["lr"] if "lr" in config else ""]
    kind_keys = ((("num_heads", "heads"), ("num_layers", "layers")) if config.get("model") == "transformer"
                 else (("hidden_dim", "H"),))
    for key, label in kind_keys + (("wordvec_dim", "W"), ("batch_size", "batch"),
                       ("lr_decay", "decay"), ("grad_clip", "clip")):
        if key in config:
            parts.append("%s=%s" % (label, _fmt(config[key])))
    return " ".join(p for p in parts if p)


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.3g" % v
    return str(v)
