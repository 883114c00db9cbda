"""Sweep flags: every bad value is one line on stderr, exit code 2, before Ray starts."""

from __future__ import annotations

import json

import pytest

from sweeps.beta_frontier import main
from sweeps.settings import PRESETS, parse_settings

BAD = [
    (["--num-samples", "0"], "--num-samples: got 0"),
    (["--num-samples", "many"], "not an integer: 'many'"),
    (["--replicates", "0"], "--replicates: got 0"),
    (["--max-concurrent", "-1"], "--max-concurrent: got -1"),
    (["--cpus-per-trial", "0.5"], "--cpus-per-trial: got 0.5"),
    (["--gpus-per-trial", "1.5"], "--gpus-per-trial: got 1.5"),
    (["--gpus-per-trial", "-0.25"], "--gpus-per-trial: got -0.25"),
    (["--steps", "0"], "--steps: got 0"),
    (["--metric", "elbo"], "invalid choice: 'elbo'"),
    (["--objective", "best"], "invalid choice: 'best'"),
    (["--preset", "huge"], "invalid choice: 'huge'"),
    (["--recon-budget", "abc"], "not a number: 'abc'"),
    (["--recon-budget", "-5"], "--recon-budget: got -5.0"),
    (["--recon-budget", "nan"], "--recon-budget: got nan"),
    (["--report-every", "10", "--checkpoint-every", "15"], "--checkpoint-every: got 15"),
    (["--name", "my sweep"], "--name: got 'my sweep'"),
    (["--name", "../escape"], "--name: got '../escape'"),
    (["--dataset", "mnist"], "--dataset: got 'mnist'"),
    (["--dataset", "shapes3d:/no/such/file.h5"], "--dataset: got 'shapes3d:/no/such/file.h5'"),
    (["--tracking-uri", "ftp://host/x"], "--tracking-uri: got 'ftp://host/x'"),
    (["--tracking-uri", "sqlite:////no/such/dir/m.db"], "--tracking-uri: got"),
    (["--storage-path", "ftp://host/x"], "--storage-path: got 'ftp://host/x'"),
    (["--seed", "-3"], "--seed: got -3"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_flags_exit_2_with_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("sweeps/beta_frontier.py: error: ")
    assert message in err
    assert list(tmp_path.iterdir()) == []  # nothing written: no mlflow.db, no ray_results


def test_resume_of_a_missing_sweep_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["--resume", "--name", "nothing-here"])
    assert exit_.value.code == 2
    assert "--resume: no sweep named 'nothing-here'" in capsys.readouterr().err


def _fake_sweep(tmp_path, argv):
    settings = parse_settings([*argv, "--storage-path", str(tmp_path / "rr")])
    folder = tmp_path / "rr" / settings.name
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"search": settings.search_settings()}))


def test_resume_with_a_changed_search_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _fake_sweep(tmp_path, ["--preset", "smoke"])
    argv = ["--preset", "smoke", "--storage-path", str(tmp_path / "rr"), "--resume"]
    with pytest.raises(SystemExit):
        main([*argv, "--recon-budget", "123"])
    err = capsys.readouterr().err
    assert "--recon-budget: the sweep was started with 1200.0, got 123.0" in err


def test_starting_an_existing_sweep_again_needs_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _fake_sweep(tmp_path, ["--preset", "smoke"])
    with pytest.raises(SystemExit):
        main(["--preset", "smoke", "--storage-path", str(tmp_path / "rr")])
    assert "already exists" in capsys.readouterr().err


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
    monkeypatch.chdir(tmp_path)
    s = parse_settings(["--name", "x"])
    assert s.storage_root == str(tmp_path.resolve() / "ray_results")
    assert s.experiment_path == f"{tmp_path.resolve()}/ray_results/x"
    remote = parse_settings(["--storage-path", "s3://bucket/sweeps/", "--name", "x"])
    assert remote.experiment_path == "s3://bucket/sweeps/x" and not remote.storage_is_local
