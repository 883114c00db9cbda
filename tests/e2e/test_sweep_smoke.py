"""The smoke sweep end to end on a local Ray, as a user runs it, then inspected with MLflow's
and Optuna's own clients. Two logical GPUs at 0.5 GPU per trial exercise fractional packing
(the trials train on the CPU: the GPUs are Ray resources only)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sweep_support import smoke_argv, storage, sweep_env, tracking_uri

NUM_SAMPLES = 3  # two settings: the first with seeds 0 and 1, the second with seed 0 only
OVER_SOME = 800.0  # nats
pytestmark = pytest.mark.slow


def sweep(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = smoke_argv(
        tmp,
        "smoke-test",
        "--num-samples",
        str(NUM_SAMPLES),
        "--num-gpus",
        "1",
        "--gpus-per-trial",
        "0.5",
        "--max-concurrent",
        "2",
        "--recon-budget",
        str(OVER_SOME),
        *extra,
    )
    env = sweep_env()
    before = listening()
    process = subprocess.Popen(
        argv, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen: set[tuple[str, str]] = set()
    with ThreadPoolExecutor(1) as pool:  # drain the pipes while sampling the sockets
        output = pool.submit(process.communicate, timeout=600)
        while not output.done():
            seen |= listening() - before
            time.sleep(0.5)
        stdout, stderr = output.result()
    done = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    done.listeners = seen  # type: ignore[attr-defined]
    return done


def listening() -> set[tuple[str, str]]:
    """``(local address:port, process name)`` of every listening TCP socket.

    A socket that no live process holds any more (its owner exited between the kernel's
    listing and ``ss``'s look-up, e.g. a Ray worker shutting down) is kept as ``(no owner)``:
    its address counts for the loopback check all the same.
    """
    out = subprocess.run(["ss", "-ltnpeH"], capture_output=True, text=True).stdout
    found = set()
    for line in out.splitlines():
        fields = line.split()
        users = next((f for f in fields if f.startswith("users:")), "")
        name = users.split('"')[1] if '"' in users else _owner(line)
        found.add((fields[3], name or "(no owner)"))
    return found


def _owner(line: str) -> str | None:
    """The command name of the process holding the socket of an ``ss -e`` line, if any."""
    inode = next((f.split(":", 1)[1] for f in line.split() if f.startswith("ino:")), None)
    if inode is None:
        return "?"
    target = f"socket:[{inode}]"
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == target for fd in fd_dir.iterdir()):
                return (fd_dir.parent / "comm").read_text().strip()
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    # A budget that seed 1 misses and seed 0 meets: after 40 steps a trial's recon is set by its
    # seed far more than by its setting (seed 0: 699-755 nats, seed 1: 845-868, measured in
    # bf16 and in fp32 on AVX2 and AVX-512), so the setting with both seeds is over the budget
    # and the one with seed 0 alone is within it, whatever the CPU's arithmetic.
    done = sweep(tmp)
    assert done.returncode == 0, done.stderr[-4000:]
    return tmp, done


def _runs(tmp: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri(tmp))
    experiment = client.get_experiment_by_name("smoke-test")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def test_mlflow_holds_one_parent_and_a_child_per_trial(swept):
    tmp, _ = swept
    client, parents, children = _runs(tmp)
    assert len(parents) == 1 and len(children) == NUM_SAMPLES
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    for tag in ("preset", "objective", "metric", "recon_budget", "search", "git_commit"):
        assert parent.data.tags[tag]
    assert parent.data.tags["metric"] == "metric.mig"
    assert parent.data.tags["sampler"] == "optuna.RandomSampler"  # the plan's, as the study says
    assert parent.data.metrics["trials_finished"] == NUM_SAMPLES
    scoring = json.loads(parent.data.tags["betavae.scoring"])
    assert scoring["mode"] == parent.data.tags["metric_mode"] == "smoke"
    assert scoring["predictor"] == parent.data.tags["dci_predictor"] == "gbt-fast"
    assert scoring["num_train"] == 2_000 and scoring["logistic"] in ("lbfgs", "liblinear")
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED"
        assert run.info.run_name.endswith(run.data.tags["betavae.trial_id"])
        params = run.data.params
        for key in (
            "objective",
            "beta",
            "gamma",
            "capacity_max",
            "capacity_anneal_steps",
            "latent_dim",
            "seed",
            "steps",
            "batch_size",
            "lr",
            "dataset",
        ):
            assert key in params
        assert params["steps"] == "40" and params["dataset"] == "dsprites"
        for key in ("recon_nll", "kl", "metric.mig", "feasible", "active_latents"):
            assert key in run.data.metrics
        assert not {"pid", "hostname", "timestamp", "time_this_iter_s"} & set(run.data.metrics)
        curve = client.get_metric_history(run.info.run_id, "train/recon_nll")
        assert [m.step for m in curve] == [10, 20, 30, 40]
        kl0 = client.get_metric_history(run.info.run_id, "train/kl_per_dim/00")
        assert len(kl0) == 4
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {
            "traversals.png",
            "reconstructions.png",
            "kl_per_latent.png",
            "trial_config.json",
            "result.json",
        } <= names
        # MLflow 3's runs table: the Dataset, Source and Models columns are filled
        (dataset,) = run.inputs.dataset_inputs
        assert dataset.dataset.name == "dsprites" and len(dataset.dataset.digest) == 16
        assert run.data.tags["mlflow.source.name"] and run.data.tags["betavae.model_id"]
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_each_trials_model_loads_back_with_mlflow_and_encodes_images(swept):
    import mlflow
    import numpy as np

    from betavae.data import load_dataset

    tmp, _ = swept
    _, _, children = _runs(tmp)
    run = children[0]
    mlflow.set_tracking_uri(tracking_uri(tmp))
    model = mlflow.pyfunc.load_model(f"models:/{run.data.tags['betavae.model_id']}")
    dataset = load_dataset("dsprites")
    classes = dataset.sample_factors(8, np.random.default_rng(0))
    codes = model.predict(dataset.images(classes))
    assert codes.shape == (8, int(run.data.params["latent_dim"]))
    assert np.isfinite(codes).all() and codes.std(axis=0).max() > 0  # depends on the image


def test_replicates_share_a_setting_and_differ_in_seed(swept):
    tmp, _ = swept
    _, _, children = _runs(tmp)
    by_setting: dict[str, list[str]] = {}
    for run in children:
        by_setting.setdefault(run.data.tags["betavae.setting"], []).append(run.data.params["seed"])
    assert sorted(len(seeds) for seeds in by_setting.values()) == [1, 2]
    assert sorted(sorted(seeds) for seeds in by_setting.values()) == [["0"], ["0", "1"]]


def test_fractional_gpus_pack_two_trials_at_once(swept):
    tmp, _ = swept
    _, _, children = _runs(tmp)
    spans = sorted((r.info.start_time, r.info.end_time) for r in children)
    overlapping = any(b_start < a_end for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    assert overlapping, spans


def test_summary_is_the_frontier_document_and_the_best_setting_honours_the_budget(swept):
    from analysis.frontier import format_summary

    tmp, done = swept
    folder = storage(tmp) / "smoke-test"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary == json.loads((folder / "report" / "frontier.json").read_text())
    assert format_summary(summary) in done.stdout  # printed from the same document
    budget = summary["sweep"]["recon_budget"]
    _, _, children = _runs(tmp)
    recon = {r.data.tags["betavae.trial_id"]: r.data.metrics["recon_nll"] for r in children}
    for run in children:
        assert run.data.metrics["feasible"] == float(run.data.metrics["recon_nll"] <= budget)
    feasible = [s for s in summary["settings"] if all(recon[t] <= budget for t in s["trial_ids"])]
    assert summary["counts"]["feasible_settings"] == len(feasible)
    assert budget == OVER_SOME and 0 < len(feasible) < len(summary["settings"])  # both kinds
    assert {r.data.tags["feasible"] for r in children} == {"true", "false"}
    if feasible:
        best = max(feasible, key=lambda s: s["metric"]["median"])
        assert summary["best_feasible"]["metric"]["median"] == best["metric"]["median"]
        assert "Best within budget: " in done.stdout
        # ... and its median seed's model is registered as models:/NAME@best.
        from mlflow.tracking import MlflowClient

        version = MlflowClient(tracking_uri(tmp)).get_model_version_by_alias("smoke-test", "best")
        assert version.tags["betavae.trial_id"] == summary["best_feasible"]["median_trial_id"]
        assert "best model: mlflow.pyfunc.load_model('models:/smoke-test@best')" in done.stdout
    else:
        assert summary["best_feasible"] is None
        assert "No setting is within the budget on every seed." in done.stdout
    assert "frontier over settings (metric.mig" in done.stdout


def test_optuna_study_persisted_with_constraints(swept):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    tmp, _ = swept
    path = storage(tmp) / "smoke-test" / "optuna.journal"
    study = optuna.load_study(
        study_name="smoke-test", storage=JournalStorage(JournalFileBackend(str(path)))
    )
    trials = study.trials
    assert len(trials) == NUM_SAMPLES
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for t in trials:
        (value,) = t.constraints.values()
        assert value == pytest.approx(t.user_attrs["recon_nll"] - OVER_SOME)
    feasible = [t for t in trials if t.constraints["recon_nll_over_budget"] <= 0]
    if feasible:
        assert study.best_trial.number == max(feasible, key=lambda t: t.value).number


def test_the_driver_prints_a_line_as_each_trial_ends(swept):
    _, done = swept
    lines = [line for line in done.stdout.splitlines() if " done] " in line]
    assert [line.split("]")[0] for line in lines] == [
        f"[{k}/{NUM_SAMPLES} done" for k in range(1, NUM_SAMPLES + 1)
    ]
    assert all("· best feasible so far: " in line for line in lines)
    # and nothing else per trial: no MLflow run links, progress bars or warnings
    assert "View run" not in done.stdout
    # the address printed at the end opens MLflow's runs table, not its GenAI overview
    assert "/#/experiments/1?workflowType=machine_learning" in done.stdout
    assert "Downloading artifacts" not in done.stdout + done.stderr
    assert "color_warning" not in done.stderr


def test_the_three_stores_link_to_each_other_both_ways(swept):
    """Optuna trial ↔ MLflow child run ↔ Tune trial, and study ↔ parent run, each followed
    with its own store's client."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    tmp, _ = swept
    folder = storage(tmp) / "smoke-test"
    study = optuna.load_study(
        study_name="smoke-test",
        storage=JournalStorage(JournalFileBackend(str(folder / "optuna.journal"))),
    )
    _, (parent,), children = _runs(tmp)
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    assert study.user_attrs["sweep_settings"]["num_samples"] == NUM_SAMPLES
    assert parent.data.tags["optuna.study_name"] == study.study_name
    by_run = {r.info.run_id: r for r in children}
    tune_dirs = {p.name.rsplit("-", 1)[-1] for p in folder.iterdir() if p.is_dir()}
    for trial in study.trials:
        run = by_run[trial.user_attrs["mlflow_run_id"]]  # Optuna → MLflow
        assert run.data.tags["optuna.trial_number"] == str(trial.number)  # MLflow → Optuna
        tune_id = trial.user_attrs["tune_trial_id"]
        assert run.data.tags["betavae.trial_id"] == tune_id
        assert tune_id in tune_dirs  # Optuna/MLflow → Tune's trial folder


def test_resume_of_a_finished_sweep_adds_nothing(swept):
    from sweeps.driver.snapshot import SESSION_FILES

    tmp, _ = swept
    again = sweep(tmp, "--resume")
    assert again.returncode == 0, again.stderr[-4000:]
    _, parents, children = _runs(tmp)
    assert len(parents) == 1 and len(children) == NUM_SAMPLES
    assert all(r.info.status == "FINISHED" for r in parents + children)
    # Tune's snapshot files: the resumed session's only (the first session's were deleted).
    folder = storage(tmp) / "smoke-test"
    for template in SESSION_FILES[:4]:
        assert len(list(folder.glob(template.format("*")))) == 1, template


def test_tunes_results_are_read_without_a_dataframe_per_trial(swept):
    """What the driver's ResultGrid holds at a fit's end: each trial's last result, without
    Tune reading its result.json into a DataFrame (a file per trial; on S3 a request each)."""
    from ray.tune import ExperimentAnalysis

    from sweeps.driver.snapshot import results_without_dataframes

    tmp, _ = swept
    folder = str(storage(tmp) / "smoke-test")
    with results_without_dataframes():
        lean = ExperimentAnalysis(folder)
    assert len(lean.trials) == NUM_SAMPLES
    assert all(t.last_result.get("final") for t in lean.trials)
    assert all(frame.empty for frame in lean.trial_dataframes.values())
    tunes = ExperimentAnalysis(folder)  # outside: Tune's own reading, as before
    assert all(len(frame) > 1 for frame in tunes.trial_dataframes.values())


def test_the_sweep_ends_with_its_frontier_report_logged_to_the_parent(swept):
    tmp, done = swept
    folder = storage(tmp) / "smoke-test" / "report"
    doc = json.loads((folder / "frontier.json").read_text())
    assert doc["schema"] == "betavae.frontier/2" and doc["counts"]["trials"] == NUM_SAMPLES
    assert doc["sweep"]["name"] == "smoke-test" and doc["sweep"]["recon_budget"] == OVER_SOME
    assert doc["scoring"]["mode"] == "smoke" and doc["counts"]["settings"] == 2
    assert {t["run_id"] for t in doc["trials"]} == {r.info.run_id for r in _runs(tmp)[2]}
    assert sorted(len(s["trial_ids"]) for s in doc["settings"]) == [1, 2]
    assert f"report: {folder / 'report.html'}" in done.stdout
    client, parents, _ = _runs(tmp)
    logged = {a.path for a in client.list_artifacts(parents[0].info.run_id, "report")}
    assert {"report/report.html", "report/frontier.json", "report/trials.parquet"} <= logged


def test_default_local_run_listens_on_loopback_only(swept):
    _, done = swept
    listeners = done.listeners
    assert listeners, "no socket seen: the sampling did not work"
    ports = {address.rsplit(":", 1)[1] for address, _ in listeners}
    assert not {"8265", "5000"} & ports  # no Ray dashboard, no MLflow server
    assert {name for _, name in listeners} & {"gcs_server", "raylet"}  # Ray's core was seen
    loopback = ("127.", "[::ffff:127.", "[::1]")
    public = {(a, n) for a, n in listeners if not a.startswith(loopback)}
    assert public == set()


def _child_view(tracking: str) -> dict:
    """Trial id → (status, params, final scores, curve steps, artifact names) of the children."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("smoke-test")
    view = {}
    for run in client.search_runs([experiment.experiment_id]):
        if "mlflow.parentRunId" not in run.data.tags:
            continue
        history = client.get_metric_history(run.info.run_id, "train/loss")
        scores = {k: round(v, 9) for k, v in run.data.metrics.items() if k.startswith("metric.")}
        artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id))
        view[run.data.tags["betavae.trial_id"]] = (
            run.info.status, run.data.params, scores, [m.step for m in history], artifacts,
        )  # fmt: skip
    return view


def test_a_lost_mlflow_store_is_rebuilt_from_tunes_state_once(swept):
    tmp, _ = swept
    rebuilt = f"sqlite:///{tmp / 'rebuilt.db'}"
    for _ in range(2):  # the second time finds every run by tag and writes nothing new
        done = subprocess.run(
            smoke_argv(tmp, "smoke-test", "--recon-budget", str(OVER_SOME),
                       "--tracking-uri", rebuilt, "--rebuild-mlflow"),
            cwd=tmp, env=sweep_env(), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    assert f"{NUM_SAMPLES} trials in Tune's state; MLflow held {NUM_SAMPLES}" in done.stdout
    assert _child_view(rebuilt) == _child_view(tracking_uri(tmp))


def test_mlflow_missing_a_trial_that_tune_finished_is_a_loud_nonzero_end(swept):
    """The sweep's own store lost a run (a database restored from an older backup in place):
    the resumed sweep says so, builds the report from Tune's results and exits 3. It deletes a
    run of the module's store: the tests after it know."""
    from mlflow.tracking import MlflowClient

    tmp, _ = swept
    client = MlflowClient(tracking_uri(tmp))
    experiment = client.get_experiment_by_name("smoke-test").experiment_id
    lost = next(r for r in client.search_runs([experiment]) if "mlflow.parentRunId" in r.data.tags)
    client.delete_run(lost.info.run_id)
    again = sweep(tmp, "--resume")
    assert again.returncode == 3, again.stderr[-3000:]
    warning = [
        line for line in again.stderr.splitlines() if "WARNING: MLflow does not hold" in line
    ]
    assert len(warning) == 1 and lost.data.tags["betavae.trial_id"] in warning[0]
    assert "--rebuild-mlflow" in warning[0]
    summary = json.loads((storage(tmp) / "smoke-test" / "summary.json").read_text())
    assert summary["counts"]["finished"] == NUM_SAMPLES  # the report counts every trial


def test_a_resume_with_another_tracking_uri_writes_the_runs_there(swept):
    """The restored MLflow callback follows the new --tracking-uri (here a copy of the store
    that lost two trials' runs, the one the test above deleted and another): it finds the runs
    there by tag and writes what is missing. After the test above."""
    import shutil

    from mlflow.tracking import MlflowClient

    tmp, _ = swept
    shutil.copy(tmp / "mlflow.db", tmp / "partial.db")
    partial = f"sqlite:///{tmp / 'partial.db'}"
    client = MlflowClient(partial)
    experiment = client.get_experiment_by_name("smoke-test").experiment_id
    lost = next(r for r in client.search_runs([experiment]) if "mlflow.parentRunId" in r.data.tags)
    client.delete_run(lost.info.run_id)
    again = sweep(tmp, "--resume", "--tracking-uri", partial)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "the sweep's MLflow store is sqlite:///" in again.stderr
    children = [r for r in client.search_runs([experiment]) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == NUM_SAMPLES and {r.info.status for r in children} == {"FINISHED"}
    assert len({r.data.tags["betavae.trial_id"] for r in children}) == NUM_SAMPLES
    back = next(
        r for r in children if r.data.tags["betavae.trial_id"] == lost.data.tags["betavae.trial_id"]
    )
    assert back.info.run_id != lost.info.run_id and "metric.mig" in back.data.metrics
