"""The Ray cluster: connecting to one (or starting one here), its size, actor pools.

Shared by the Ray ingest (``ingest/distributed.py``) and Ray batch answering
(``kbqa.app.batch_ray``). Ray itself is imported only when a function here runs.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import KbqaError

log = logging.getLogger(__name__)

# How often Ray restarts a dead actor and retries its batch before the batch's
# documents are reported as failed (Ray Data's own default is forever).
MAX_RETRIES = 3
LOCAL_MAX_CPUS = 8  # a Ray instance started here takes at most this many CPUs


class RayUnavailable(KbqaError):
    """Ray is not installed, or the cluster cannot be reached."""


def offline_environment() -> None:
    """Workers never reach a model hub: models come from installed packages."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@contextmanager
def connect(address: str | None, local_cpus: int | None = None) -> Iterator[None]:
    """Connected to the cluster at ``address``, or to a Ray instance started here for the
    run; an existing connection in this process is used as it is and left open."""
    try:
        import ray
    except ImportError as error:
        raise RayUnavailable(
            "the ray engine needs Ray: pip install 'kbqa[ray]' (ray[data])"
        ) from error
    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: no usage reports
    settings: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    try:
        if address:
            ray.init(address=address, **settings)
        else:
            cpus = local_cpus or max(2, min(os.cpu_count() or 2, LOCAL_MAX_CPUS))
            ray.init(num_cpus=cpus, include_dashboard=False, **settings)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = address or "a local instance"
        hint = ""
        if "uthenticat" in f"{error} {error.__cause__}":
            hint = (
                "; the cluster uses token authentication: set RAY_AUTH_MODE=token and "
                "give its token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
            )
        raise RayUnavailable(f"cannot start or reach Ray ({where}): {error}{hint}") from error
    try:
        yield
    finally:
        ray.shutdown()


def actor_stage(
    method: Any,
    actor_class: type,
    *,
    actors: int,
    cpus: float,
    gpus: float,
    retries: int,
    **arguments: Any,
) -> Any:
    """``dataset.map`` or ``dataset.map_batches`` (``method``) with an actor pool of up to
    ``actors`` instances of ``actor_class``, each restarted up to ``retries`` times."""
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False  # the driver has its own
    if not log.isEnabledFor(logging.INFO):
        # Ray Data prints each execution's plan to the terminal; its log file keeps them.
        for handler in logging.getLogger("ray.data").handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                handler.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        # Ray 2.60 marks ray_remote_args as deprecated but has no named parameter for
        # restarts and retries; without them a batch that kills its actor each time
        # would be retried forever (Ray Data's default).
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
        return method(
            actor_class,
            compute=ray.data.ActorPoolStrategy(
                min_size=1, max_size=max(1, actors), initial_size=max(1, actors)
            ),
            num_cpus=cpus,
            num_gpus=gpus or None,
            max_restarts=retries,
            max_task_retries=retries,
            **arguments,
        )


def cluster_size() -> tuple[float, float]:
    """CPUs and GPUs of the cluster as Ray sees them now."""
    import ray

    resources = ray.cluster_resources()
    return float(resources.get("CPU", 1.0)), float(resources.get("GPU", 0.0))
