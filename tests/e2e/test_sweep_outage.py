"""A real ``mlflow server`` on loopback, first hung (SIGSTOP: it accepts connections and
answers nothing) for 12 s mid-sweep, more than twice the HTTP timeout the sweep runs with,
then stopped for 8 s and started again: the trials keep training through both, the sweep
finishes, no metric point is lost, and no run is created twice.

MLflow's client would bridge an 8 s refusal by itself (retries with back-off); the sweep runs
with its retries off and a 5 s HTTP timeout (the sweep's own default is 30 s,
``sweeps.driver.tuner``) so that what is tested is the sweep's own recovery: requests that time
out while the server hangs (and that the server may still carry out when it wakes), skipped
curve points back-filled from the checkpoint, trial ends retried until the server is back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from sweep_support import free_port, smoke_argv, start_server, stop, storage, sweep_env

pytestmark = pytest.mark.slow
N = 2
OUTAGE_S = 8  # a refused request fails at once: a few report points are missed
HANG_S = 12
HTTP_TIMEOUT_S = 5  # the hang outlasts it twice


def test_sweep_survives_a_hung_then_stopped_tracking_server(tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    sweep = None
    try:
        env = sweep_env(
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(HTTP_TIMEOUT_S)
        )
        out = (tmp_path / "sweep.out").open("w")
        sweep = subprocess.Popen(
            smoke_argv(
                tmp_path,
                "outage",
                "--steps",
                "400",
                "--report-every",
                "20",
                "--checkpoint-every",
                "40",
                "--num-samples",
                str(N),
                "--tracking-uri",
                uri,
            ),
            cwd=tmp_path,
            env=env,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        checkpoints = storage(tmp_path) / "outage"
        deadline = time.time() + 180
        while time.time() < deadline and not list(checkpoints.glob("*/checkpoint_000000")):
            assert sweep.poll() is None, (tmp_path / "sweep.out").read_text()[-3000:]
            time.sleep(0.5)
        before = len(list(checkpoints.glob("*/checkpoint_*")))
        os.killpg(server.pid, signal.SIGSTOP)  # hung: connections wait, nothing answers
        time.sleep(HANG_S)
        during = len(list(checkpoints.glob("*/checkpoint_*")))
        os.killpg(server.pid, signal.SIGCONT)
        assert during > before + 2, (before, during)  # Tune's loop never waited on MLflow
        stop(server)  # mid-training: trials keep reporting while nothing answers
        time.sleep(OUTAGE_S)
        assert sweep.poll() is None, "the sweep died during the outage"
        server = start_server(tmp_path, port)
        assert sweep.wait(timeout=600) == 0, (tmp_path / "sweep.out").read_text()[-3000:]
        assert "back-filled" in (tmp_path / "sweep.out").read_text()  # points were missed

        import mlflow
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        mlflow.set_tracking_uri(uri)
        runs = client.search_runs([client.get_experiment_by_name("outage").experiment_id])
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert len(runs) == N + 1 and len(children) == N  # no ghost, no duplicate
        assert len({r.data.tags["betavae.trial_id"] for r in children}) == N
        assert all(r.info.status == "FINISHED" for r in runs)
        for run in children:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
            assert sorted(steps) == list(range(20, 401, 20)), steps  # each step once
            assert "metric.mig" in run.data.metrics
            model = client.get_logged_model(run.data.tags["betavae.model_id"])
            assert model.source_run_id == run.info.run_id
            files = mlflow.artifacts.list_artifacts(f"{model.artifact_location}/artifacts")
            assert {f.path.rsplit("/", 1)[-1] for f in files} == {
                "model.safetensors",
                "config.json",
            }
    finally:
        if sweep is not None and sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait()
        stop(server)
