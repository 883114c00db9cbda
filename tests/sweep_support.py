"""What the end-to-end sweep tests share: a smoke sweep's command line, its environment and the
places it writes to (``TMP/ray_results`` and ``TMP/mlflow.db`` unless a test says otherwise)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "sweeps" / "beta_frontier.py"


def storage(tmp: Path) -> Path:
    return tmp / "ray_results"


def tracking_uri(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'mlflow.db'}"


def smoke_argv(tmp: Path, name: str, *flags: str) -> list[str]:
    """``python sweeps/beta_frontier.py --preset smoke --name NAME`` storing under ``tmp``;
    ``flags`` come last, so they may replace the storage or the tracking URI."""
    return [
        sys.executable,
        str(SCRIPT),
        "--preset",
        "smoke",
        "--name",
        name,
        "--storage-path",
        str(storage(tmp)),
        "--tracking-uri",
        tracking_uri(tmp),
        *flags,
    ]


def sweep_env(**extra: str) -> dict[str, str]:
    """This process's environment without ``RAY_ADDRESS`` (each test picks its Ray), plus
    ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(extra)
    return env


def run_sweep(argv: list[str], tmp: Path, env: dict[str, str] | None = None):
    """Run a sweep to its end in ``tmp`` (at most 10 minutes); output captured as text."""
    return subprocess.run(
        argv, cwd=tmp, env=env or sweep_env(), capture_output=True, text=True, timeout=600
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_runs(tracking: str, name: str) -> list:
    """The trial runs (children of the sweep's parent run) of experiment ``name``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


#: The bucket and the credentials of the local S3 endpoint (fixture ``s3_endpoint``).
BUCKET = "sweeps"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start_server(tmp: Path, port: int) -> subprocess.Popen:
    """A real ``mlflow server`` on loopback (its store and artifacts in ``tmp``), answering."""
    mlflow = Path(sys.executable).with_name("mlflow")
    log = (tmp / f"server-{time.time():.0f}.log").open("w")
    server = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp / 'server.db'}",
            "--artifacts-destination",
            str(tmp / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,  # its own process group: stopped together, by id
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()  # the server holds its own copy
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            assert server.poll() is None, "mlflow server exited at start"
            time.sleep(0.5)
    stop(server)
    raise AssertionError("mlflow server did not answer /health within 120 s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
