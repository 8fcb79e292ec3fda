"""Ray itself: importing it on first use, and starting or joining a cluster for the length of a sweep."""
import contextlib
import logging
import os

INSTALL_HINT = "install the sweep extra: pip install -e '.[sweep]'"
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def require_ray():
    """``ray.tune``, imported on first use (it takes seconds); ImportError saying how to install it."""
    try:
        import ray.tune
    except ImportError as e:
        raise ImportError(f"cs231n.sweep needs Ray Tune, which is not installed; {INSTALL_HINT}") from e
    return ray.tune


def start_ray(address=None, num_cpus=None, cpus_per_trial=1):
    """Connect to Ray unless already connected: a local cluster by default, or the cluster at ``address``.

    Inputs:
    - address: None (start a local Ray on this machine), 'auto' (the cluster this machine belongs to)
      or 'host:port' of a cluster's head.
    - num_cpus: CPUs of the local cluster (default: all of this machine's); not used with ``address``.
    - cpus_per_trial: the BLAS thread count given to every worker's environment.

    Returns True when this call started or joined Ray (the caller then shuts it down), False when Ray
    was already initialized (e.g. by a test session).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    require_ray()
    import ray

    # Tune warns when a checkpoint per epoch makes it save its state often; for small trials that is normal.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        return False
    env = {var: str(cpus_per_trial) for var in BLAS_THREAD_VARIABLES}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                  runtime_env={"env_vars": env})
    if address is None:
        ray.init(num_cpus=num_cpus, **kwargs)
    else:
        if num_cpus is not None:
            raise ValueError("num_cpus sizes a local cluster; it cannot be combined with address")
        ray.init(address=address, **kwargs)
    return True


@contextlib.contextmanager
def ray_session(address=None, num_cpus=None, cpus_per_trial=1):
    """:func:`start_ray` for the length of a ``with`` block; Ray is shut down after it if this started it."""
    started = start_ray(address, num_cpus, cpus_per_trial)
    try:
        yield
    finally:
        if started:
            import ray
            ray.shutdown()
