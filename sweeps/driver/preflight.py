"""Before the trials: the Ray the sweep runs on, and what must hold for its trials to start.

Each check answers with a ``UsageError`` naming the flag, the value and what is allowed, before
a trial waits forever or fails late. Each takes the values it checks, not the whole settings.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from analysis.redaction import redact
from sweeps.config.settings import UsageError, storage_is_local


def ray_address(address: str | None) -> str | None:
    """``--address``/``RAY_ADDRESS``; else the cluster ``ray start`` runs on this machine; else
    "local": a new Ray of the sweep's own.

    Only ``ray start`` (and ``ray up``'s head) writes its address into Ray's
    ``ray_current_cluster`` file; a driver's private local Ray never does. So another local
    sweep's Ray, or the leftovers of a driver killed with ``kill -9`` (its raylet and agents
    linger for about a minute), are never joined: this driver starts its own at once. A stale
    file, whose cluster is gone, is ignored too (Ray itself would try it and fail).
    """
    if address:
        return address
    return started_cluster() or "local"


def ray_temp_dir() -> Path:
    """Ray's default temporary folder (``RAY_TMPDIR``, else /tmp on Linux), as Ray finds it."""
    if os.environ.get("RAY_TMPDIR"):
        return Path(os.environ["RAY_TMPDIR"]) / "ray"
    base = "/tmp" if sys.platform.startswith("linux") else tempfile.gettempdir()
    return Path(base) / "ray"


def started_cluster() -> str | None:
    """The address ``ray start`` left in ``ray_current_cluster``, if its GCS still runs here."""
    try:
        address = (ray_temp_dir() / "ray_current_cluster").read_text().strip()
    except OSError:
        return None
    port = address.rpartition(":")[2]
    return address if port.isdigit() and gcs_listening(int(port)) else None


def gcs_listening(port: int) -> bool:
    """Whether a Ray GCS server of this machine serves ``port`` (its process's command line,
    which ``ray start`` gives ``--gcs_server_port=PORT``; else a connection on loopback)."""
    proc = Path("/proc")
    if proc.is_dir():
        for cmdline in proc.glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
            except OSError:  # the process ended meanwhile
                continue
            program = Path(args[0].decode(errors="replace")).name
            if program == "gcs_server" and f"--gcs_server_port={port}".encode() in args:
                return True
        return False
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def start_ray(address: str | None, *, num_gpus: float | None = None) -> None:
    """Connect to ``address`` (see ``ray_address``), or start a local Ray for "local";
    ``num_gpus``: a new local Ray's logical GPUs (None: detect).

    Nothing of the driver's environment is handed to Ray (``runtime_env`` env vars are logged
    by Ray's agent and returned by its job API): a new local Ray's workers inherit the
    driver's environment, storage credentials included; a cluster's nodes use their own."""
    import ray

    kwargs: dict[str, Any] = {
        "address": address,
        "logging_level": "WARNING",
        "log_to_driver": True,
    }
    if address == "local":
        kwargs["include_dashboard"] = False
        if num_gpus is not None:
            kwargs["num_gpus"] = num_gpus
        bind_to_loopback()
    try:
        ray.init(**kwargs)
    except ConnectionError as err:  # unreachable, or it refused this driver's token
        raise UsageError(
            f"--address: got {address!r}; {err}; allowed: a cluster that accepts "
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


def check_shared_storage(storage_path: str) -> None:
    """Refuse local sweep storage on a multi-node cluster: trials on other nodes could not
    write their checkpoints where the driver reads them."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    declared_shared = storage_path.startswith("file://")
    if len(nodes) > 1 and storage_is_local(storage_path) and not declared_shared:
        raise UsageError(
            f"--storage-path: got {storage_path!r}, a local folder, on a Ray cluster of "
            f"{len(nodes)} nodes; allowed: storage every node reaches (s3://, gs://, abfs://, "
            "hdfs://, or a local path on a shared file system given as file://PATH)"
        )


def check_local_resources(
    address: str | None, *, cpus_per_trial: float, gpus_per_trial: float, num_gpus: float | None
) -> None:
    """On a new local Ray (``address`` "local"), a trial asking for more CPUs or GPUs than this
    machine has would wait forever: refuse it instead. ``num_gpus``: ``--num-gpus`` (None:
    the GPUs torch sees)."""
    if address != "local":
        return
    cpus = os.cpu_count() or 1
    if cpus_per_trial > cpus:
        raise UsageError(
            f"--cpus-per-trial: got {cpus_per_trial}; allowed: at most {cpus}, the CPUs "
            "of this machine (a local Ray); pass --address to use a cluster"
        )
    if gpus_per_trial > 0:
        if num_gpus is not None:
            gpus = num_gpus
        else:
            import torch

            gpus = torch.cuda.device_count()
        if gpus_per_trial > gpus:
            raise UsageError(
                f"--gpus-per-trial: got {gpus_per_trial}; allowed: at most {gpus:g}, the "
                "GPUs of this machine (a local Ray), or 0 to train on the CPU; pass --address "
                "to use a cluster"
            )


def check_tracking_server(uri: str, timeout: float = 10.0) -> None:
    """An http(s) tracking URI must answer MLflow's ``/health`` before any trial starts."""
    import urllib.error
    import urllib.request

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


#: Where Ray's cluster launcher leaves the cluster's config on the head (with its node types).
BOOTSTRAP_CONFIG = Path.home() / "ray_bootstrap_config.yaml"
AUTOSCALER_STATUS_KEY = "__autoscaling_status"  # what a running autoscaler publishes in Ray's KV


def node_shapes(config_path: Path = BOOTSTRAP_CONFIG) -> tuple[str, dict[str, dict]] | None:
    """``(source, {name: resources})`` of the nodes a trial could run on: the autoscaler's node
    types when the cluster config is here and lists every type's resources, else the live
    nodes when no autoscaler runs; None when neither can be known (an autoscaler whose node
    types are elsewhere, e.g. KubeRay's: the check is then left to it)."""
    import ray

    if config_path.is_file():
        import yaml

        types = (yaml.safe_load(config_path.read_text()) or {}).get("available_node_types") or {}
        if types and all("resources" in t for t in types.values()):
            return "the autoscaler's node types", {k: t["resources"] for k, t in types.items()}
    if autoscaler_has_node_types():
        return None
    live = [n for n in ray.nodes() if n.get("Alive")]
    return "the cluster's live nodes", {n["NodeID"][:8]: n.get("Resources", {}) for n in live}


def autoscaler_status() -> dict | None:
    """The report Ray's monitor publishes in the KV store; None until its first one."""
    import json

    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(AUTOSCALER_STATUS_KEY)
    if not raw:
        return None
    try:
        return json.loads(raw).get("autoscaler_report") or {}
    except ValueError:
        return None


def autoscaler_has_node_types() -> bool:
    """Whether an autoscaler with node types of its own runs (it may add nodes a trial fits).

    Every head runs Ray's monitor; without an autoscaling config it maps each node to a type
    named ``node_<id>`` (nothing to add). Read from the status the monitor publishes.
    """
    report = autoscaler_status() or {}
    types = (report.get("node_type_mapping") or {}).values()
    return any(not str(name).startswith("node_") for name in types)


#: How long a refusal waits for the monitor's first report on a head just started (it
#: publishes every few seconds, later on a busy machine): until then an autoscaler that could
#: add a fitting node looks like a cluster of its live nodes only.
MONITOR_FIRST_REPORT_S = 30.0


def wait_for_autoscaler_status(
    timeout_s: float = MONITOR_FIRST_REPORT_S, poll_s: float = 1.0
) -> bool:
    """Whether the monitor's report appeared while we waited (False: it was there already, or
    never came)."""
    if autoscaler_status() is not None:
        return False
    for _ in range(max(1, int(timeout_s / poll_s))):
        time.sleep(poll_s)
        if autoscaler_status() is not None:
            return True
    return False


def check_cluster_placement(
    address: str | None, *, cpus_per_trial: float, gpus_per_trial: float, shapes=None
) -> None:
    """On a cluster (not a new local Ray), refuse a trial that fits no node: it would stay
    PENDING forever. ``shapes``: ``node_shapes()``'s answer (looked up when None)."""
    if address == "local":
        return
    need = {"CPU": cpus_per_trial, "GPU": gpus_per_trial}

    def fits(found) -> bool:
        return found is None or any(
            all(float(r.get(k, 0)) >= v for k, v in need.items() if v > 0)
            for r in found[1].values()
        )

    found = node_shapes() if shapes is None else shapes
    if fits(found):
        return
    if shapes is None and wait_for_autoscaler_status():
        found = node_shapes()  # the monitor spoke: an autoscaler with node types may add one
        if fits(found):
            return
    source, nodes = found
    flag, what = ("--gpus-per-trial", "GPU") if gpus_per_trial > max(
        (float(r.get("GPU", 0)) for r in nodes.values()), default=0.0
    ) else ("--cpus-per-trial", "CPU")  # fmt: skip
    shape = "; ".join(
        f"{name}: {float(r.get('CPU', 0)):g} CPU, {float(r.get('GPU', 0)):g} GPU"
        for name, r in nodes.items()
    )
    raise UsageError(
        f"{flag}: a trial asks for {cpus_per_trial:g} CPU and "
        f"{gpus_per_trial:g} GPU, which fits none of {source} ({shape}); allowed: at "
        f"most one node's {what}s per trial"
    )
