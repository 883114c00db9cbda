"""Real multi-node Ray on one machine: a head and a worker node (separate raylets started
with ``ray start``, loopback, token auth on), the sweep as the driver on the head.

The worker node has 4 logical CPUs and 1 logical GPU, so the same cluster also shows four
0.25-GPU trials packed on one GPU at once. Every process a test starts is stopped by its
process group, and the test checks that none is left.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_support import child_runs, free_port, run_sweep, smoke_argv, tracking_uri

RAY = str(Path(sys.executable).parent / "ray")
pytestmark = pytest.mark.slow


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(process: subprocess.Popen) -> None:
    """Stop a ``ray start --block`` node: its whole process group (it leads a new session)."""
    pgid = process.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not group_alive(pgid):
            break
        os.killpg(pgid, sig)
        deadline = time.time() + 20
        while time.time() < deadline and group_alive(pgid):
            process.poll()  # reap the leader, or it lingers as a zombie of the group
            time.sleep(0.2)
    process.wait(timeout=10)


def forget_cluster(port: int) -> None:
    """Remove the address file ``ray start`` leaves for its cluster (on port ``port``), so that
    a later plain ``ray.init()`` on this machine starts its own Ray instead of failing to reach
    this stopped one. Ray writes the machine's address there even when told 127.0.0.1."""
    current = Path("/tmp/ray/ray_current_cluster")
    if current.is_file() and current.read_text().strip().rsplit(":", 1)[-1] == str(port):
        current.unlink()


def start_node(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """``ray start ARGS --block`` in its own session (so its process group can be stopped)."""
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [
                RAY,
                "start",
                *args,
                "--block",
                "--node-ip-address=127.0.0.1",
                "--disable-usage-stats",
            ],
            env=env,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multinode")
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env.pop("RAY_ADDRESS", None)
    address = f"127.0.0.1:{port}"
    nodes = []
    try:
        head = [
            "--head",
            f"--port={port}",
            "--num-cpus=1",
            "--num-gpus=0",
            "--include-dashboard=false",
        ]
        nodes.append(start_node(head, env, tmp / "head.log"))
        wait_for(env, address, nodes=1)
        worker = [f"--address={address}", "--num-cpus=4", "--num-gpus=1"]
        nodes.append(start_node(worker, env, tmp / "worker.log"))
        wait_for(env, address, nodes=2)
        yield tmp, env, address
    finally:
        for node in reversed(nodes):
            stop(node)
        leftovers = [n.pid for n in nodes if group_alive(n.pid)]
        forget_cluster(port)
        assert leftovers == [], f"process groups still alive: {leftovers}"


def wait_for(env: dict, address: str, *, nodes: int, timeout: float = 90) -> None:
    probe = (
        "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = subprocess.run(
            [sys.executable, "-c", probe, address],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(nodes)]:
            return
        time.sleep(1)
    raise AssertionError(f"cluster did not reach {nodes} nodes: {done.stderr[-2000:]}")


def sweep(tmp: Path, env: dict, address: str, name: str, *extra: str):
    return run_sweep(smoke_argv(tmp, name, "--address", address, *extra), tmp, env)


def children(tmp: Path, name: str):
    return child_runs(tracking_uri(tmp), name)


def test_trials_run_on_both_nodes_and_mlflow_records_them_all(cluster):
    tmp, env, address = cluster
    done = sweep(
        tmp,
        env,
        address,
        "spread",
        "--storage-path",
        f"file://{tmp / 'shared'}",
        # 5 at once: more than the worker's 4 CPUs hold, so the head's one CPU takes a trial.
        "--max-concurrent",
        "5",
        "--num-samples",
        "6",
    )
    assert done.returncode == 0, done.stderr[-4000:]
    runs = children(tmp, "spread")
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)
    assert len({r.data.tags["ray.node_id"] for r in runs}) == 2
    summary = json.loads((tmp / "shared" / "spread" / "summary.json").read_text())
    assert summary["counts"]["finished"] == 6
    assert (tmp / "shared" / "spread" / "report" / "report.html").is_file()


def test_four_quarter_gpu_trials_share_one_gpu_at_once(cluster):
    tmp, env, address = cluster
    done = sweep(
        tmp,
        env,
        address,
        "packed",
        "--storage-path",
        f"file://{tmp / 'shared'}",
        "--gpus-per-trial",
        "0.25",
        "--max-concurrent",
        "4",
        "--num-samples",
        "4",
    )
    assert done.returncode == 0, done.stderr[-4000:]
    runs = children(tmp, "packed")
    assert len(runs) == 4 and len({r.data.tags["ray.node_id"] for r in runs}) == 1
    latest_start = max(r.info.start_time for r in runs)
    earliest_end = min(r.info.end_time for r in runs)
    assert latest_start < earliest_end  # all four were running together


def test_local_storage_on_a_multi_node_cluster_is_refused(cluster):
    tmp, env, address = cluster
    done = sweep(tmp, env, address, "local", "--storage-path", str(tmp / "local"))
    assert done.returncode == 2
    (line,) = [x for x in done.stderr.splitlines() if "error:" in x]
    assert "--storage-path: got" in line and "on a Ray cluster of 2 nodes" in line
    assert not (tmp / "local").exists()


def test_a_trial_larger_than_every_live_node_is_refused_before_trials(cluster):
    tmp, env, address = cluster
    shared = f"file://{tmp / 'shared'}"
    done = sweep(tmp, env, address, "toobig", "--storage-path", shared, "--gpus-per-trial", "2")
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = [x for x in done.stderr.splitlines() if "error:" in x]
    assert "--gpus-per-trial: a trial asks for 1 CPU and 2 GPU" in line
    assert "fits none of the cluster's live nodes" in line
    assert not list((tmp / "shared").glob("toobig/*/params.json"))  # no trial started


def test_a_cluster_that_refuses_the_drivers_token_is_one_clear_line(cluster):
    tmp, env, address = cluster
    wrong = {**env, "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    done = sweep(tmp, wrong, address, "refused", "--storage-path", f"file://{tmp / 'shared'}")
    assert done.returncode == 2, done.stderr[-3000:]
    # Ray's core logs each refused attempt (its own "RPC error" lines); the sweep's is one line.
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("sweeps/beta_frontier.py:")]
    assert f"--address: got '{address}'; Failed to connect to Ray cluster" in line
    assert "local for a new Ray of this sweep's own" in line
    assert "Traceback" not in done.stderr


def test_nothing_listens_on_the_default_dashboard_or_mlflow_ports(cluster):
    # The head was started like the default local run: no dashboard; MLflow is a sqlite file.
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    ports = {line.split()[3].rsplit(":", 1)[1] for line in listening.splitlines()}
    assert not {"8265", "5000"} & ports


FAKE_AUTOSCALING = """
cluster_name: fake-gpu
max_workers: 1
provider: {type: fake_multinode, use_node_id_as_ip: true, disable_node_updaters: true,
           disable_launch_config_check: true}
available_node_types:
  ray.head.default: {resources: {CPU: 0, GPU: 0}, node_config: {}, max_workers: 0}
  ray.worker.gpu: {resources: {CPU: 4, GPU: 1}, node_config: {}, min_workers: 0, max_workers: 1}
head_node_type: ray.head.default
auth: {}
upscaling_speed: 1.0
idle_timeout_minutes: 1
docker: {}
initialization_commands: []
setup_commands: []
head_setup_commands: []
worker_setup_commands: []
head_start_ray_commands: []
worker_start_ray_commands: []
file_mounts: {}
cluster_synced_files: []
file_mounts_sync_continuously: false
rsync_exclude: []
rsync_filter: []
"""


def test_autoscaler_adds_a_gpu_worker_on_demand(tmp_path):
    """Ray's fake multi-node provider: a head with no CPU or GPU, and a GPU worker type that
    the autoscaler launches (as local processes) when 0.25-GPU trials wait."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 6379)) == 0:
            pytest.skip("port 6379 is taken: the fake provider only works on Ray's default port")
    (tmp_path / "fake.yaml").write_text(FAKE_AUTOSCALING)
    env = {
        **os.environ,
        "RAY_FAKE_CLUSTER": "1",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",  # Ray's default 5 s between looks at the demand
    }
    env.pop("RAY_ADDRESS", None)
    head = start_node(
        [
            "--head",
            "--num-cpus=0",
            "--num-gpus=0",
            "--include-dashboard=false",
            f"--autoscaling-config={tmp_path / 'fake.yaml'}",
        ],
        env,
        tmp_path / "head.log",
    )
    try:
        wait_for(env, "127.0.0.1:6379", nodes=1)
        done = sweep(
            tmp_path,
            env,
            "127.0.0.1:6379",
            "autoscaled",
            "--storage-path",
            f"file://{tmp_path / 'shared'}",
            "--gpus-per-trial",
            "0.25",
            # 2 trials (4 on one GPU: test_four_quarter_gpu_trials_share_one_gpu_at_once)
            "--max-concurrent",
            "2",
            "--num-samples",
            "2",
        )
    finally:
        stop(head)  # the fake worker's processes live in the head's process group
        forget_cluster(6379)
    assert not group_alive(head.pid)
    assert done.returncode == 0, done.stderr[-4000:]
    runs = children(tmp_path, "autoscaled")
    nodes = {r.data.tags["ray.node_id"] for r in runs}
    head_id = "f" * 51 + "00000"  # the fake provider's fixed head node id
    assert len(runs) == 2 and len(nodes) == 1 and head_id not in nodes


def test_a_lost_worker_nodes_trials_resume_from_their_checkpoints_elsewhere(tmp_path):
    """Kill a worker node (its raylet and workers, ``kill -9``) while its trials train: Tune
    retries them from their last checkpoint on the surviving node; every trial ends once, with
    each curve point once and C on schedule."""
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env.pop("RAY_ADDRESS", None)
    address = f"127.0.0.1:{port}"
    head = ["--head", f"--port={port}", "--num-cpus=1", "--num-gpus=0", "--include-dashboard=false"]
    nodes = [start_node(head, env, tmp_path / "head.log")]
    try:
        wait_for(env, address, nodes=1)
        nodes.append(
            start_node([f"--address={address}", "--num-cpus=2"], env, tmp_path / "worker.log")
        )
        wait_for(env, address, nodes=2)
        steps, report, checkpoint = 200, 20, 40
        argv = smoke_argv(
            tmp_path,
            "lost",
            "--address",
            address,
            "--storage-path",
            f"file://{tmp_path / 'shared'}",
            "--num-samples",
            "3",
            "--max-concurrent",
            "3",  # 3 trials, 1 CPU on the head: two train on the worker
            "--steps",
            str(steps),
            "--report-every",
            str(report),
            "--checkpoint-every",
            str(checkpoint),
        )
        with (tmp_path / "sweep.out").open("w") as out:
            driver = subprocess.Popen(
                argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        folder = tmp_path / "shared" / "lost"
        deadline = time.time() + 300
        while time.time() < deadline and len(checkpointed_twice(folder)) < 3:
            assert driver.poll() is None, (tmp_path / "sweep.out").read_text()[-3000:]
            time.sleep(0.2)
        stop_hard(nodes.pop())  # the worker node dies mid-training
        assert driver.wait(timeout=600) == 0, (tmp_path / "sweep.out").read_text()[-3000:]
    finally:
        for node in reversed(nodes):
            stop(node)
        forget_cluster(port)
    assert not any(group_alive(n.pid) for n in nodes)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri(tmp_path))
    runs = children(tmp_path, "lost")
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    assert len({r.data.tags["ray.node_id"] for r in runs}) == 1  # all ended on the head
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert [m.step for m in history] == list(range(report, steps + 1, report))
        if run.data.params["objective"] == "capacity":
            c_max = float(run.data.params["capacity_max"])
            anneal = int(run.data.params["capacity_anneal_steps"])
            for m in client.get_metric_history(run.info.run_id, "train/capacity"):
                assert m.value == pytest.approx(c_max * min(1.0, m.step / anneal))
    # Two trials were restarted after the node loss: Tune kept their error files.
    retried = [p.parent.name for p in (tmp_path / "shared" / "lost").glob("*/error.txt")]
    assert len(retried) == 2, retried

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = JournalFileBackend(str(tmp_path / "shared" / "lost" / "optuna.journal"))
    study = optuna.load_study(study_name="lost", storage=JournalStorage(journal))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3


def checkpointed_twice(folder: Path) -> set[Path]:
    """Trial folders holding a checkpoint after their first (older ones may be deleted)."""
    return {p.parent for p in folder.glob("*/checkpoint_*") if int(p.name.split("_")[1]) >= 1}


def stop_hard(process: subprocess.Popen) -> None:
    """``kill -9`` a node's whole process group at once: a machine that vanishes."""
    os.killpg(process.pid, signal.SIGKILL)
    deadline = time.time() + 20
    while time.time() < deadline and group_alive(process.pid):
        process.poll()
        time.sleep(0.2)
    process.wait(timeout=10)


def job_stop_wait_s() -> int:
    """The grace ``ray job stop`` gives the driver between SIGTERM and SIGKILL, as the cluster
    configs set it (``RAY_JOB_STOP_WAIT_TIME_S`` on the head; Ray's default is 3 s)."""
    import re

    config = (Path(__file__).resolve().parents[2] / "cluster" / "gpu.yaml").read_text()
    return int(re.search(r"RAY_JOB_STOP_WAIT_TIME_S=(\d+)", config).group(1))


@pytest.fixture(scope="module")
def job_head(tmp_path_factory):
    """A head whose job server listens on 127.0.0.1 only, with the cluster configs' grace for
    ``ray job stop``; the two job tests share it (each its own sweep name and folders).
    Yields ``ray_job(cwd, *args)`` (the CLI against it) and the job server's port."""
    tmp = tmp_path_factory.mktemp("jobs")
    port, dashboard = free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env.pop("RAY_ADDRESS", None)
    # A job's entrypoint runs with the head's environment: the installed commands on its PATH,
    # as in the cluster image.
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    head_env = {**env, "RAY_JOB_STOP_WAIT_TIME_S": str(job_stop_wait_s())}
    head = start_node(
        ["--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         # The job server hands a job to its node's agent over HTTP. The module's cluster (up
         # while these tests run) holds the agent's default port 52365 on this machine.
         f"--dashboard-agent-listen-port={free_port()}"],
        head_env, tmp / "head.log",
    )  # fmt: skip
    jobs = f"http://127.0.0.1:{dashboard}"

    def ray_job(cwd: Path, *args: str) -> subprocess.CompletedProcess:
        if args[0] in ("submit", "stop", "status", "logs"):
            args = (args[0], "--address", jobs, *args[1:])
        deadline = time.time() + 90
        while True:  # the job server takes a few seconds to find its node's agent
            done = subprocess.run(
                [RAY, "job", *args], cwd=cwd, env=env,
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if "No available agent" not in done.stdout + done.stderr or time.time() > deadline:
                return done
            time.sleep(2)

    try:
        wait_for(env, f"127.0.0.1:{port}", nodes=1)
        yield ray_job, dashboard
    finally:
        stop(head)
        forget_cluster(port)


def test_ray_job_submit_runs_the_sweep_and_a_retried_submission_continues_it(tmp_path, job_head):
    """The recommended cluster path: ``ray job submit`` to a head whose job server listens on
    127.0.0.1 only. The driver runs on the head as a Ray job; submitting the same command again
    (``--resume auto``) continues the sweep instead of being refused."""
    ray_job, dashboard = job_head
    command = [
        "betavae-sweep", "--preset", "smoke", "--name", "job", "--num-samples", "2",
        "--storage-path", str(tmp_path / "ray_results"), "--tracking-uri", tracking_uri(tmp_path),
        "--resume", "auto",
    ]  # fmt: skip
    first = ray_job(tmp_path, "submit", "--", *command)
    second = ray_job(tmp_path, "submit", "--", *command)  # a retried submission: continues
    listening_on = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    assert "Job 'raysubmit_" in first.stdout and "succeeded" in first.stdout
    assert "2 trials: 2 finished, 0 failed, 0 unfinished" in first.stdout
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert "2 trials: 2 finished" in second.stdout and "already exists" not in second.stdout
    runs = children(tmp_path, "job")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert f"127.0.0.1:{dashboard}" in listening_on  # the job server, on loopback only
    assert f"0.0.0.0:{dashboard}" not in listening_on and f"*:{dashboard}" not in listening_on


def test_ray_job_stop_ends_the_sweep_killed_and_resumable(tmp_path, job_head):
    """``ray job stop`` sends the driver SIGTERM, then SIGKILL after the head's grace: within
    it the driver stops Tune, saves the sweep and ends its MLflow runs KILLED; a resubmitted
    job (``--resume auto``) finishes it with every trial once."""
    from mlflow.tracking import MlflowClient

    ray_job, _ = job_head
    name, trials = "stopped", 2  # both train at once on the head's 2 CPUs: both are stopped
    command = [
        "betavae-sweep", "--preset", "smoke", "--name", name, "--num-samples", str(trials),
        "--steps", "400", "--report-every", "20", "--checkpoint-every", "40",
        "--storage-path", str(tmp_path / "ray_results"), "--tracking-uri", tracking_uri(tmp_path),
        "--resume", "auto",
    ]  # fmt: skip
    sweep = tmp_path / "ray_results" / name
    submitted = ray_job(tmp_path, "submit", "--submission-id", "first", "--no-wait", "--", *command)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    deadline = time.time() + 300
    while not list(sweep.glob("*/checkpoint_000001")):  # trials are training
        assert time.time() < deadline, ray_job(tmp_path, "logs", "first").stdout
        time.sleep(0.5)
    stopped_at = time.time()
    stop_job = ray_job(tmp_path, "stop", "first")
    assert stop_job.returncode == 0, stop_job.stdout + stop_job.stderr
    while True:
        status = ray_job(tmp_path, "status", "first")
        if "was stopped" in status.stdout + status.stderr:  # the CLI's words for STOPPED
            break
        assert time.time() < stopped_at + 120, status.stdout + status.stderr
        time.sleep(1)
    logs = ray_job(tmp_path, "logs", "first").stdout
    client = MlflowClient(tracking_uri(tmp_path))
    stopped = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    again = ray_job(tmp_path, "submit", "--submission-id", "again", "--", *command)
    assert "stopped by SIGTERM" in logs, logs[-3000:]  # the driver's own ending, not a SIGKILL
    # Within the grace the driver ended its runs: the sweep KILLED (until the resume), its
    # trials' runs KILLED or, for a trial that had finished, FINISHED; none left RUNNING.
    statuses = {r.data.tags.get("betavae.trial_id", "parent"): r.info.status for r in stopped}
    assert statuses.pop("parent") == "KILLED", statuses
    assert set(statuses.values()) <= {"KILLED", "FINISHED"} and "KILLED" in statuses.values()
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert f"{trials} trials: {trials} finished, 0 failed, 0 unfinished" in again.stdout
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    trial_runs = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == trials + 1 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["betavae.trial_id"] for r in trial_runs}) == trials
