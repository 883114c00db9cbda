from __future__ import annotations

import json
import subprocess
import sys

import pytest

from betavae.train import build_parser, main

FAST = ["--steps", "30", "--batch-size", "16", "--latent-dim", "3", "--log-every", "10",
        "--eval-images", "256", "--device", "cpu"]  # fmt: skip


def _error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--beta", "-1"], "--beta: got -1.0; allowed: a finite number > 0"),
        (["--beta", "abc"], "argument --beta: invalid float value: 'abc'"),
        (["--latent-dim", "0"], "--latent-dim: got 0; allowed: an integer >= 1 and <= 1024"),
        (["--objective", "tc"], "argument --objective: invalid choice: 'tc'"),
        (["--capacity-min", "5", "--capacity-max", "2"], "--capacity-max: got 2.0; allowed"),
        (["--lr", "nan"], "--lr: got nan; allowed: a finite number > 0 and <= 1"),
        (["--dataset", "mnist"], "--dataset: got 'mnist'; allowed: one of dsprites"),
        (["--dataset", "dsprites-npz:/no/such.npz"], "/no/such.npz: no such file"),
        (["--steps", "-5"], "--steps: got -5; allowed: an integer >= 1"),
        (["--log-every", "0"], "--log-every: got 0; allowed: an integer >= 1"),
        (["--threads", "0"], "--threads: got 0; allowed: an integer >= 1"),
        (["--resume"], "--resume: no checkpoint in"),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(capsys, tmp_path, argv, expected):
    assert expected in _error(capsys, [*argv, "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_help_documents_every_flag():
    text = build_parser().format_help()
    for flag in ["--objective", "--beta", "--gamma", "--capacity-max", "--capacity-anneal-steps",
                 "--latent-dim", "--steps", "--batch-size", "--lr", "--seed", "--dataset", "--out",
                 "--resume"]:  # fmt: skip
        assert flag in text


def test_a_run_writes_metrics_and_resumes(capsys, tmp_path):
    out = tmp_path / "run"
    argv = [*FAST, "--objective", "capacity", "--capacity-max", "8", "--capacity-anneal-steps",
            "40", "--gamma", "100", "--checkpoint-every", "20", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == 30 and metrics["eval_images"] == 256
    assert metrics["recon_nll"] > 0 and len(metrics["kl_per_dim"]) == 3
    assert metrics["kl"] == pytest.approx(sum(metrics["kl_per_dim"]))
    assert metrics["config"]["objective"] == "capacity" and metrics["config"]["capacity_max"] == 8
    assert metrics["images_per_s"] > 0 and "torch" in metrics["versions"]
    assert "recon_nll" in capsys.readouterr().out

    # A second run into the same folder is refused; a resume with a changed model is refused.
    assert "already holds a run" in _error(capsys, argv)
    assert "trained with 3" in _error(capsys, [*argv, "--resume", "--latent-dim", "5"])

    # Resume to 50 steps: the history continues where the checkpoint was, C keeps rising.
    assert main([*argv[:-2], "--steps", "50", "--resume", "--out", str(out)]) == 0
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [10, 20, 30, 40, 50]
    assert [h["capacity"] for h in history] == [2.0, 4.0, 6.0, 8.0, 8.0]
    assert json.loads((out / "metrics.json").read_text())["step"] == 50


def test_the_module_runs_as_a_script(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "betavae.train", "--gamma", "0", "--out", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "python -m betavae.train: error: --gamma: got 0.0; allowed: a finite number > 0"
    )
