"""Sweep flags: presets, the environment and config files give the defaults; flags win.
(Bad values: tests/sweeps/test_bad_inputs.py.)"""

from __future__ import annotations

import os

import pytest

from sweeps.config import PRESETS, UsageError, parse_settings


def test_presets_fill_defaults_and_flags_override(monkeypatch):
    for variable in ("RAY_ADDRESS", "BETAVAE_STORAGE_PATH", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    s = parse_settings([])
    assert s.preset == "cpu" and s.tracking_uri == "sqlite:///mlflow.db"
    assert s.storage_path == "./ray_results" and s.name == "beta-frontier" and s.address is None
    assert (s.steps, s.num_samples) == (PRESETS["cpu"]["steps"], PRESETS["cpu"]["num_samples"])
    paper = parse_settings(["--preset", "paper"])
    assert (paper.steps, paper.batch_size, paper.gpus_per_trial) == (300_000, 64, 0.25)
    assert paper.model == "burgess"
    s = parse_settings(["--preset", "paper", "--steps", "1000", "--gpus-per-trial", "0.5"])
    assert (s.steps, s.gpus_per_trial) == (1000, 0.5)
    assert parse_settings(["--metric", "dci"]).metric_key == "metric.dci.disentanglement"


def test_cluster_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    monkeypatch.setenv("BETAVAE_STORAGE_PATH", "s3://bucket/sweeps")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    s = parse_settings([])
    assert s.address == "127.0.0.1:6379" and s.storage_path == "s3://bucket/sweeps"
    assert s.tracking_uri == "http://127.0.0.1:5000"
    s = parse_settings(["--address", "auto", "--storage-path", "/tmp/x"])
    assert s.address == "auto" and s.storage_path == "/tmp/x"


def test_relative_storage_path_becomes_absolute_for_tune(tmp_path, monkeypatch):
    from sweeps.store import SweepFolder

    monkeypatch.chdir(tmp_path)
    s = SweepFolder("./ray_results", "x")
    assert s.root == str(tmp_path.resolve() / "ray_results") and s.is_local
    assert s.path == f"{tmp_path.resolve()}/ray_results/x"
    remote = SweepFolder("s3://bucket/sweeps/", "x")
    assert remote.path == "s3://bucket/sweeps/x" and not remote.is_local
    options = "?endpoint_override=127.0.0.1:9000&scheme=http"  # pyarrow's, kept at the end
    minio = SweepFolder(f"s3://bucket/sweeps/{options}", "x")
    assert minio.root == f"s3://bucket/sweeps{options}"
    assert minio.path == f"s3://bucket/sweeps/x{options}"
    keyed = SweepFolder(f"s3://KEY:SECRET@bucket/sweeps{options}", "x")
    assert keyed.credentials() == {"AWS_ACCESS_KEY_ID": "KEY", "AWS_SECRET_ACCESS_KEY": "SECRET"}
    assert "SECRET" not in keyed.shown and "SECRET" not in "".join(keyed.tune_paths())


def test_a_config_file_gives_defaults_and_flags_win(tmp_path, monkeypatch):
    for variable in ("RAY_ADDRESS", "BETAVAE_STORAGE_PATH", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    config = tmp_path / "sweep.toml"
    config.write_text(
        'preset = "smoke"\nnum_samples = 6\nbeta-range = [2, 16]\nlatent-dims = [3, 5]\n'
        "learning-rate = 1e-3\nresume = false\n"
    )
    s = parse_settings(["--config", str(config)])
    assert (s.preset, s.num_samples, s.beta_range, s.latent_dim_range) == (
        "smoke",
        6,
        (2.0, 16.0),
        (3, 5),
    )
    assert s.lr == 1e-3 and s.steps == PRESETS["smoke"]["steps"] and not s.resume
    s = parse_settings(["--config", str(config), "--num-samples", "2", "--preset", "cpu"])
    assert (s.num_samples, s.preset, s.beta_range) == (2, "cpu", (2.0, 16.0))


def test_narrowed_space_is_searched_and_starting_points_outside_it_dropped(tmp_path):
    import optuna

    from sweeps.search.plan import build_searcher, initial_points, search_space

    # The paper preset starts from β = 4 and 16 and C_max = 25 (γ = 100) at z = 10: only
    # β = 4 fits β ∈ [1, 4], γ ≤ 50.
    paper = ("--preset", "paper")
    s = parse_settings(
        [*paper, "--beta-range", "1,4", "--gamma-range", "20,50", "--storage-path", str(tmp_path)]
    )
    assert [p.get("beta") for p in initial_points(s, search_space(s))] == [4.0]
    journal = tmp_path / "a" / "optuna.journal"
    assert build_searcher(s, journal).suggest("first")["beta"] == 4.0  # it starts there
    s = parse_settings(
        [
            *paper,
            "--beta-range",
            "1,4",
            "--latent-dims",
            "5,6",
            "--storage-path",
            str(tmp_path / "b"),
        ]
    )
    assert initial_points(s, search_space(s)) == []
    s = parse_settings([*paper, "--families", "capacity", "--storage-path", str(tmp_path / "c")])
    assert [p["objective"] for p in initial_points(s, search_space(s))] == ["capacity"]
    # The cpu preset has none: random sampling from the first trial, as measured best.
    default = parse_settings([])
    assert initial_points(default, search_space(default)) == []
    s = parse_settings(
        [
            "--beta-range", "1,4", "--latent-dims", "5,6", "--gamma-range", "50,50",
            "--capacity-max-range", "10,20", "--anneal-fraction-range", "0.5,0.75",
            "--storage-path", str(tmp_path / "d"),
        ]
    )  # fmt: skip
    space = search_space(s)
    study = optuna.create_study()
    seen = set()
    for _ in range(40):
        trial = study.ask()
        space(trial)
        p = trial.params
        seen.add(p["objective"])
        if p["objective"] == "beta":
            assert 1.0 <= p["beta"] <= 4.0
        else:
            assert p["gamma"] == 50.0 and 10.0 <= p["capacity_max"] <= 20.0
            assert 0.5 <= p["anneal_fraction"] <= 0.75
        assert 5 <= p["latent_dim"] <= 6
        study.tell(trial, 0.0)
    assert seen == {"beta", "capacity"}


def test_a_new_local_ray_binds_to_loopback_unless_the_user_chose(monkeypatch):
    # What Ray then does with the switch: test_sweep_smoke's loopback test.
    from sweeps.driver.preflight import SINGLE_MACHINE_ENV, bind_to_loopback

    monkeypatch.delenv(SINGLE_MACHINE_ENV, raising=False)
    bind_to_loopback()
    assert os.environ[SINGLE_MACHINE_ENV] == "0"  # Ray reads it on import; its processes too
    monkeypatch.setenv(SINGLE_MACHINE_ENV, "1")
    bind_to_loopback()
    assert os.environ[SINGLE_MACHINE_ENV] == "1"


def test_dry_run_prints_the_paper_preset_and_starts_nothing(tmp_path, monkeypatch, capsys):
    import json
    import sys

    from sweeps.beta_frontier import main

    monkeypatch.chdir(tmp_path)
    assert main(["--preset", "paper", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "γ = 100 encoded the positions, then scale" in text  # readable, not \u03b3
    out = json.loads(text)
    s = out["sweep"]["settings"]
    assert (s["steps"], s["batch_size"], s["lr"]) == (300_000, 64, 1e-4)  # disentanglement_lib
    assert s["metric_mode"] == "reference" and out["sweep"]["scoring"]["mode"] == "reference"
    space = out["search_space"]
    assert (space["beta"]["low"], space["beta"]["high"]) == (1.0, 16.0)
    assert (space["gamma"]["low"], space["gamma"]["high"]) == (20.0, 200.0)  # where it learned
    assert out["gamma"]["range"] == [20.0, 200.0]
    assert out["gamma"]["basis"].startswith("measured: at the papers' own schedule")
    assert space["anneal_fraction"]["steps"] == [100_000, 100_000]
    assert (space["capacity_max"]["low"], space["capacity_max"]["high"]) == (5.0, 100.0)
    low, high = space["latent_dim"]["low"], space["latent_dim"]["high"]
    assert 5 <= low <= 10 <= high
    assert out["trials"] == 64 and out["training_images"] == 64 * 300_000 * 64
    assert out["recon_budget"]["basis"].startswith("an estimate")
    assert len(out["initial_points"]) == 3
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    assert main(["--preset", "paper", "--dry-run", "--recon-budget", "55"]) == 0
    assert json.loads(capsys.readouterr().out)["recon_budget"] == {
        "nats": 55.0,
        "basis": "given by --recon-budget",
    }
    assert main(["--preset", "paper", "--dry-run", "--recon-budget", "40"]) == 0  # the preset's
    assert json.loads(capsys.readouterr().out)["recon_budget"]["basis"] == "given by --recon-budget"
    assert main(["--preset", "paper", "--dry-run", "--gamma-range", "20,200"]) == 0
    assert json.loads(capsys.readouterr().out)["gamma"]["basis"] == "given by --gamma-range"
    assert main(["--preset", "paper", "--dry-run", "--gamma-range", "1000,1000"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gamma"] == {"range": [1000.0, 1000.0], "basis": "given by --gamma-range"}
    assert [p.get("gamma") for p in out["initial_points"]] == [None, None]  # γ = 100 dropped
    assert main(["--preset", "paper", "--dry-run", "--families", "beta"]) == 0
    assert json.loads(capsys.readouterr().out)["gamma"]["basis"].startswith("not searched")


def test_dry_run_warns_of_a_lone_seed_udr_cannot_score(tmp_path, monkeypatch, capsys):
    import json

    from sweeps.beta_frontier import main

    monkeypatch.chdir(tmp_path)
    assert main(["--preset", "paper", "--metric", "udr", "--dry-run"]) == 0
    (warning,) = json.loads(capsys.readouterr().out)["warnings"]
    assert warning.startswith("--num-samples 64 is not a multiple of --replicates 3")
    assert "the last setting gets 1 seed," in warning and "63 or 66 trials" in warning
    for fits in (["--num-samples", "63"], ["--metric", "mig"]):
        assert main(["--preset", "paper", "--metric", "udr", "--dry-run", *fits]) == 0
        assert json.loads(capsys.readouterr().out)["warnings"] == []


def test_installed_commands_run_the_modules_mains(tmp_path):
    """``pip install`` puts betavae-sweep, betavae-train and betavae-report on the PATH."""
    import json
    import subprocess
    import sys
    from importlib.metadata import entry_points
    from pathlib import Path

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["betavae-sweep"] == "sweeps.beta_frontier:main"
    assert scripts["betavae-train"] == "betavae.train:main"
    assert scripts["betavae-report"] == "analysis.report:main"
    bin_dir = Path(sys.executable).parent
    dry = subprocess.run(
        [bin_dir / "betavae-sweep", "--preset", "smoke", "--dry-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(dry.stdout)["trials"] == PRESETS["smoke"]["num_samples"]
    for name in ("betavae-train", "betavae-report"):
        bad = subprocess.run([bin_dir / name, "--bogus"], capture_output=True, text=True)
        assert bad.returncode == 2 and bad.stderr.startswith(f"{name}: error: "), bad.stderr


def test_a_trial_that_fits_no_node_type_is_refused_in_one_line(tmp_path):
    from sweeps.driver.preflight import check_cluster_placement, node_shapes

    config = tmp_path / "ray_bootstrap_config.yaml"
    config.write_text(
        "available_node_types:\n"
        "  head: {resources: {CPU: 4}}\n"
        "  gpu: {resources: {CPU: 4, GPU: 1}}\n"
    )
    shapes = node_shapes(config)
    assert shapes == (
        "the autoscaler's node types",
        {"head": {"CPU": 4}, "gpu": {"CPU": 4, "GPU": 1}},
    )

    def check(address: str, flags: list[str]) -> None:
        s = parse_settings(flags)
        check_cluster_placement(
            address, cpus_per_trial=s.cpus_per_trial, gpus_per_trial=s.gpus_per_trial, shapes=shapes
        )

    check("auto", ["--gpus-per-trial", "0.25", "--cpus-per-trial", "2"])
    check("local", ["--gpus-per-trial", "2"])  # a new local Ray: checked by its own rule
    for flags, flag in (
        (["--gpus-per-trial", "2"], "--gpus-per-trial"),
        (["--cpus-per-trial", "8"], "--cpus-per-trial"),
        (["--cpus-per-trial", "8", "--gpus-per-trial", "1"], "--cpus-per-trial"),
    ):
        with pytest.raises(UsageError) as refused:
            check("auto", flags)
        message = str(refused.value)
        assert message.startswith(f"{flag}: a trial asks for") and "\n" not in message
        assert "head: 4 CPU, 0 GPU; gpu: 4 CPU, 1 GPU" in message


def test_a_refusal_waits_for_a_new_heads_first_autoscaler_report(monkeypatch):
    """Right after `ray start --head --autoscaling-config`, the monitor has not yet said it can
    add nodes: the live head alone fits no GPU trial. The check waits for that first report
    (seen red: the autoscaler e2e refused its 0.25-GPU trials on a busy machine)."""
    from sweeps.driver import preflight

    live = ("the cluster's live nodes", {"head0000": {"CPU": 0}})
    reports = iter([None, None, {"node_type_mapping": {"x": "gpu_worker"}}])
    status = {"now": None}

    def next_status():
        status["now"] = next(reports, status["now"])
        return status["now"]

    monkeypatch.setattr(preflight, "autoscaler_status", next_status)
    monkeypatch.setattr(preflight.time, "sleep", lambda s: None)
    monkeypatch.setattr(
        preflight, "node_shapes", lambda: None if preflight.autoscaler_has_node_types() else live
    )
    preflight.check_cluster_placement("auto", cpus_per_trial=1, gpus_per_trial=0.25)

    # A monitor that has reported and can add nothing: refused at once, without waiting.
    monkeypatch.setattr(preflight, "autoscaler_status", lambda: {"node_type_mapping": {}})
    monkeypatch.setattr(preflight.time, "sleep", lambda s: pytest.fail("waited"))
    with pytest.raises(UsageError, match=r"^--gpus-per-trial: .*live nodes"):
        preflight.check_cluster_placement("auto", cpus_per_trial=1, gpus_per_trial=0.25)


def test_only_a_cluster_started_with_ray_start_is_joined(tmp_path, monkeypatch):
    """A driver's private Ray (another local sweep's, or a killed driver's leftovers) is never
    joined: only the address ``ray start`` wrote, while its GCS runs here."""
    import subprocess
    import sys
    import time

    from sweeps.driver.preflight import ray_address

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    assert ray_address(None) == "local"  # no ray start here
    assert ray_address("10.0.0.1:6379") == "10.0.0.1:6379"
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("192.0.2.7:46123")
    assert ray_address(None) == "local"  # its cluster is gone: stale
    stand_in = f"exec -a gcs_server {sys.executable} -c 'import time; time.sleep(60)'"
    gcs = subprocess.Popen(["bash", "-c", f"{stand_in} --gcs_server_port=46123"])
    try:
        for _ in range(100):  # until the stand-in GCS process has its name
            if ray_address(None) != "local":
                break
            time.sleep(0.05)
        assert ray_address(None) == "192.0.2.7:46123"
    finally:
        gcs.kill()
        gcs.wait()


def test_your_own_images_alone_make_a_udr_sweep_with_two_seeds_a_setting(
    tmp_path, monkeypatch, capsys
):
    """``--dataset images:DIR`` and nothing else: UDR is the metric and each setting gets two
    seeds (the cpu preset's one could not be scored); the budget, a dSprites figure, is said
    to be one, with the command that gives the images' own scale. Flags given still win."""
    import json

    import numpy as np
    from PIL import Image

    from sweeps.beta_frontier import main

    (tmp_path / "cells").mkdir()
    for i in range(4):
        Image.fromarray(np.full((64, 64), 60 * i, np.uint8)).save(tmp_path / "cells" / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    assert main(["--dataset", "images:cells", "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sweep"]["metric_key"] == "metric.udr"
    assert out["sweep"]["settings"]["replicates"] == 2
    (warning,) = out["warnings"]
    assert warning.startswith("--recon-budget 130 is the cpu preset's figure for dSprites")
    assert "python -m betavae.data stats images:cells" in warning
    given = ["--dataset", "images:cells", "--replicates", "3", "--num-samples", "12",
             "--recon-budget", "900", "--dry-run"]  # fmt: skip
    assert main(given) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sweep"]["settings"]["replicates"] == 3 and out["warnings"] == []
    chosen = ["--dataset", "images:cells", "--recon-budget", "130", "--dry-run"]  # the preset's
    assert main(chosen) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []  # a figure the user chose
