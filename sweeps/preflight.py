"""Before the trials: the Ray the sweep runs on, and what must hold for its trials to start.

Each check answers with a ``UsageError`` naming the flag, the value and what is allowed, before
a trial waits forever or fails late.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from analysis.redaction import redact
from sweeps.settings import SweepSettings, UsageError


def ray_address(settings: SweepSettings) -> str | None:
    """``--address``/``RAY_ADDRESS``; else a cluster running on this machine; else a new one.

    Ray itself would also try the address a previous ``ray start`` left in
    /tmp/ray/ray_current_cluster even when that cluster is gone, and fail; so without a
    running GCS here we ask for a new local instance explicitly.
    """
    if settings.address:
        return settings.address
    return None if local_ray_running() else "local"


RAY_DAEMONS = ("raylet", "gcs_server")


def local_ray_running() -> bool:
    """Whether a Ray node runs on this machine: a live ``raylet`` or ``gcs_server`` process."""
    proc = Path("/proc")
    if proc.is_dir():
        for comm in proc.glob("[0-9]*/comm"):
            try:
                if comm.read_text().strip() in RAY_DAEMONS:
                    return True
            except OSError:  # the process ended meanwhile
                continue
        return False
    listing = subprocess.run(["ps", "-A", "-o", "comm="], capture_output=True, text=True)
    return any(Path(line.strip()).name in RAY_DAEMONS for line in listing.stdout.splitlines())


def start_ray(
    settings: SweepSettings, address: str | None, env_vars: dict[str, str] | None = None
) -> None:
    """Connect to ``address`` (see ``ray_address``), or start a local Ray for "local";
    ``env_vars`` go to every worker of the sweep."""
    import ray

    kwargs: dict[str, Any] = {
        "address": address,
        "logging_level": "WARNING",
        "log_to_driver": True,
    }
    if env_vars:
        kwargs["runtime_env"] = {"env_vars": env_vars}
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
    """Make a new local Ray listen on 127.0.0.1 only, unless the user set the switch.

    On Linux Ray binds its GCS, raylet and workers to every interface and its agents to the
    machine's address. In single-machine mode every one of them binds to 127.0.0.1. Ray reads
    the switch when it is first imported, so this must run before ``import ray``: the sweep's
    command does (``run`` imports Ray after it). A program that imported Ray earlier gets Ray's
    default binding.
    """
    os.environ.setdefault(SINGLE_MACHINE_ENV, "0")


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
    import base64
    import urllib.parse

    parts = urllib.parse.urlsplit(uri)
    headers = {}
    if parts.username is not None:  # user:password@ in the URI: basic auth, as MLflow does
        credentials = f"{parts.username}:{parts.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    health = urllib.parse.urlunsplit(parts).rstrip("/") + "/health"
    try:
        request = urllib.request.Request(health, headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = redact(str(getattr(err, "reason", err)))
        raise UsageError(
            f"--tracking-uri: cannot reach the MLflow server at {redact(uri)!r} ({reason}); "
            "allowed: a running server (mlflow server …), or sqlite:///FILE"
        ) from None
