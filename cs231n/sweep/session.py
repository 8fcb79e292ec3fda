"""Ray itself: importing it on first use, and starting or joining a cluster for the length of a sweep."""
import contextlib
import logging
import os
import sys

INSTALL_HINT = "install the sweep extra: pip install -e '.[sweep]'"
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def require_ray():
    """``ray.tune``, imported on first use (it takes seconds); ImportError saying how to install it."""
    try:
        import ray.tune
    except ImportError as e:
        raise ImportError(f"cs231n.sweep needs Ray Tune, which is not installed; {INSTALL_HINT}") from e
    return ray.tune


def ray_address(address=None):
    """The cluster a sweep joins: ``address``, else ``$RAY_ADDRESS``, else None (start a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def check_request(address=None, num_cpus=None, cpus_per_trial=1, gpus_per_trial=0):
    """Refuse, before any work, a request that cannot run: ``num_cpus`` with a cluster to join, or a
    trial asking for more CPUs than the local Ray will have. (What a cluster has is checked once
    connected, by :func:`start_ray`.)"""
    joined = ray_address(address)
    if joined is not None and num_cpus is not None:
        how = "address" if address else "the RAY_ADDRESS environment variable"
        raise ValueError(f"num_cpus (--num-cpus) sizes a local Ray; it cannot be combined with joining the "
                         f"cluster at {joined} (from {how})")
    if joined is None:
        cpus = num_cpus if num_cpus is not None else os.cpu_count() or 1
        if cpus_per_trial > cpus:
            raise ValueError(f"cpus_per_trial (--cpus-per-trial) {cpus_per_trial} is more than the {cpus} CPU(s) "
                             f"of the local Ray ({'num_cpus' if num_cpus is not None else 'this machine'}); no "
                             f"trial could ever start")


def _reachable(address, timeout_s=10.0):
    """Raise ConnectionError unless a TCP connection to ``host:port`` opens within ``timeout_s`` seconds
    (Ray itself retries an unreachable head for minutes)."""
    import socket

    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"address must be HOST:PORT of a Ray head (e.g. 10.0.0.5:6379) or 'auto', got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ConnectionError(f"cannot reach a Ray cluster at {address} ({e.strerror or e}); give the head's "
                              f"HOST:PORT as `ray start --head` printed it, or leave --address out to start a "
                              f"local Ray") from None


@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 to /dev/null for the block (Ray's C++ client logs each failed try there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _use_token_if_needed(address):
    """Switch on Ray's token authentication when the cluster at ``address`` asks for a token.

    Ray 2.60 starts clusters with token authentication, but a process joining by address does not look
    for a token unless RAY_AUTH_MODE=token (and a cluster without authentication must not be sent one:
    its trials would fail). So the head is asked once, without a token: if it refuses, the token Ray
    finds ($RAY_AUTH_TOKEN, the file $RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token) is used, and none found is
    a ConnectionError saying where to put it. An explicit RAY_AUTH_MODE is left alone.
    """
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available)
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:  # a Ray without token authentication
        return
    try:
        with _stderr_silenced():
            GcsClient(address=address)
        return  # the head answers without a token
    except AuthenticationError:
        pass
    except Exception:
        return  # anything else: ray.init says what
    if not maybe_enable_token_auth_if_token_available(warn_if_disabled=False):
        raise ConnectionError(f"the Ray cluster at {address} uses token authentication and no token was found; "
                              f"put the head's token (its ~/.ray/auth_token) in RAY_AUTH_TOKEN, in a file named by "
                              f"RAY_AUTH_TOKEN_PATH or in ~/.ray/auth_token")


def _check_cluster(cpus_per_trial, gpus_per_trial):
    """Refuse a trial that no node of the connected cluster can hold (Tune would wait for it forever)."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for name, key, asked in (("cpus_per_trial (--cpus-per-trial)", "CPU", cpus_per_trial),
                             ("gpus_per_trial (--gpus-per-trial)", "GPU", gpus_per_trial)):
        most = max((r.get(key, 0) for r in nodes), default=0)
        if asked > most:
            raise ValueError(f"{name} {asked:g} is more than any node of the Ray cluster has (the most: "
                             f"{most:g} {key}); no trial could ever start")


class _HideRayHints(logging.Filter):
    """Drops Ray's log lines that point users elsewhere than the sweep's own directory and command, and
    its notice that a new local cluster uses token authentication (Ray's default)."""

    HINTS = ("Tuner.restore", "Failed to fetch metrics", "Stop signal received",
             "Token authentication is enabled for this Ray cluster")

    def filter(self, record):
        message = record.getMessage()
        return not any(h in message for h in self.HINTS)


_HINT_LOGGERS = ("ray.tune.tune", "ray.tune.analysis.experiment_analysis", "ray.tune.result_grid",
                 "ray._private.authentication.authentication_token_setup")


def start_ray(address=None, num_cpus=None, cpus_per_trial=1, gpus_per_trial=0):
    """Connect to Ray unless already connected: a new local cluster by default, or the cluster at ``address``.

    Inputs:
    - address: None (``$RAY_ADDRESS`` if set, else start a new local Ray on this machine; a cluster
      already running here is never joined unasked), 'auto' (the cluster this machine belongs to) or
      'HOST:PORT' of a cluster's head. When that head asks for a token and RAY_AUTH_MODE is not set,
      the token Ray finds ($RAY_AUTH_TOKEN, the file $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) is used.
    - num_cpus: CPUs of the local cluster (default: all of this machine's); not used with an address.
    - cpus_per_trial: the BLAS thread count given to every worker's environment; gpus_per_trial: GPUs
      a trial asks for. A request that no node can hold is refused (ValueError) instead of waiting.

    An unreachable address fails within seconds (ConnectionError). Returns True when this call started
    or joined Ray (the caller then shuts it down), False when Ray was already initialized (e.g. by a
    test session).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    require_ray()
    import ray

    # Tune warns when a checkpoint per epoch makes it save its state often; for small trials that is normal.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's own start-up banner (and its TensorBoard hint into Ray's /tmp session) is not printed: the
    # sweep prints its own lines about its own directory.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    check_request(address, num_cpus, cpus_per_trial, gpus_per_trial)
    started = False
    if not ray.is_initialized():
        env = {var: str(cpus_per_trial) for var in BLAS_THREAD_VARIABLES}
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                      runtime_env={"env_vars": env})
        joined = ray_address(address)
        if joined is None:
            # A new local cluster, even when one already runs on this machine (ray.init() alone would
            # join it).
            ray.init(address="local", num_cpus=num_cpus, **kwargs)
        else:
            if joined != "auto":  # with 'auto' Ray itself uses a token it finds
                _reachable(joined)
                _use_token_if_needed(joined)
            ray.init(address=joined, **kwargs)
        started = True
    try:
        _check_cluster(cpus_per_trial, gpus_per_trial)
    except BaseException:
        if started:
            ray.shutdown()
        raise
    return started


@contextlib.contextmanager
def ray_session(address=None, num_cpus=None, cpus_per_trial=1, gpus_per_trial=0):
    """:func:`start_ray` for the length of a ``with`` block; Ray is shut down after it if this started it.

    Tune's hints that point elsewhere than the sweep (``Tuner.restore(...)`` instead of ``sweep --resume``)
    are left out of the log while the block runs.
    """
    hide = _HideRayHints()
    loggers = [logging.getLogger(name) for name in _HINT_LOGGERS]
    for log in loggers:
        log.addFilter(hide)
    started = False
    try:
        started = start_ray(address, num_cpus, cpus_per_trial, gpus_per_trial)
        yield
    finally:
        for log in loggers:
            log.removeFilter(hide)
        if started:
            import ray
            ray.shutdown()
