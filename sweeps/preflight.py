"""Before the trials: the Ray the sweep runs on, and what must hold for its trials to start.

Each check answers with a ``UsageError`` naming the flag, the value and what is allowed, before
a trial waits forever or fails late.
"""

from __future__ import annotations

import os
from typing import Any

from sweeps.settings import SweepSettings, UsageError


def ray_address(settings: SweepSettings) -> str | None:
    """``--address``/``RAY_ADDRESS``; else a cluster running on this machine; else a new one.

    Ray itself would also try the address a previous ``ray start`` left in
    /tmp/ray/ray_current_cluster even when that cluster is gone, and fail; so without a
    running GCS here we ask for a new local instance explicitly.
    """
    if settings.address:
        return settings.address
    try:
        from ray._private.services import find_gcs_addresses

        return None if find_gcs_addresses() else "local"
    except Exception:  # private API moved: keep Ray's own default
        return None


def start_ray(settings: SweepSettings, address: str | None) -> None:
    """Connect to ``address`` (see ``ray_address``), or start a local Ray for "local"."""
    import ray

    kwargs: dict[str, Any] = {
        "address": address,
        "logging_level": "WARNING",
        "log_to_driver": True,
    }
    if address == "local":
        kwargs["include_dashboard"] = False
        if settings.num_gpus is not None:
            kwargs["num_gpus"] = settings.num_gpus
        bind_to_loopback()
    try:
        ray.init(**kwargs)
    except ConnectionError as err:  # unreachable, or it refused this driver's token
        where = repr(address) if address else "(none: the cluster running on this machine)"
        raise UsageError(
            f"--address: got {where}; {err}; allowed: a cluster that accepts "
            "this driver (its token in RAY_AUTH_TOKEN or ~/.ray/auth_token), or local for a "
            "new Ray of this sweep's own"
        ) from None


#: Ray's single-machine switch: "0" gives the node the address 127.0.0.1 (the default on macOS
#: and Windows), so that every Ray process listens on loopback only; nothing can join it.
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def bind_to_loopback() -> None:
    """Make the new local Ray listen on 127.0.0.1 only, unless the user set the switch.

    On Linux Ray binds its GCS, raylet and workers to every interface and its agents to the
    machine's address. In single-machine mode the node's address is 127.0.0.1 and every one of
    them binds there. Ray reads the switch when it is imported (``ray_address`` has imported
    it already), so the driver's copy is set too; Ray's processes read the environment.
    """
    from ray._common.utils import env_bool
    from ray._private import ray_constants

    os.environ.setdefault(SINGLE_MACHINE_ENV, "0")
    if hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        ray_constants.ENABLE_RAY_CLUSTER = env_bool(SINGLE_MACHINE_ENV, True)


def check_shared_storage(settings: SweepSettings) -> None:
    """Refuse local sweep storage on a multi-node cluster: trials on other nodes could not
    write their checkpoints where the driver reads them."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    declared_shared = settings.storage_path.startswith("file://")
    if len(nodes) > 1 and settings.storage_is_local and not declared_shared:
        raise UsageError(
            f"--storage-path: got {settings.storage_path!r}, a local folder, on a Ray cluster of "
            f"{len(nodes)} nodes; allowed: storage every node reaches (s3://, gs://, abfs://, "
            "hdfs://, or a local path on a shared file system given as file://PATH)"
        )


def check_local_resources(settings: SweepSettings, address: str | None) -> None:
    """On a new local Ray (``address`` "local"), a trial asking for more CPUs or GPUs than this
    machine has would wait forever: refuse it instead."""
    if address != "local":
        return
    cpus = os.cpu_count() or 1
    if settings.cpus_per_trial > cpus:
        raise UsageError(
            f"--cpus-per-trial: got {settings.cpus_per_trial}; allowed: at most {cpus}, the CPUs "
            "of this machine (a local Ray); pass --address to use a cluster"
        )
    if settings.gpus_per_trial > 0:
        if settings.num_gpus is not None:
            gpus = settings.num_gpus
        else:
            import torch

            gpus = torch.cuda.device_count()
        if settings.gpus_per_trial > gpus:
            raise UsageError(
                f"--gpus-per-trial: got {settings.gpus_per_trial}; allowed: at most {gpus:g}, the "
                "GPUs of this machine (a local Ray), or 0 to train on the CPU; pass --address "
                "to use a cluster"
            )


def check_tracking_server(settings: SweepSettings, timeout: float = 10.0) -> None:
    """An http(s) tracking URI must answer MLflow's ``/health`` before any trial starts."""
    import urllib.error
    import urllib.request

    uri = settings.tracking_uri
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise UsageError(
            f"--tracking-uri: cannot reach the MLflow server at {uri!r} ({reason}); allowed: a "
            "running server (mlflow server …), or sqlite:///FILE"
        ) from None
