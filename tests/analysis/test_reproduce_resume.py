"""A reproduction run killed part-way continues from its last probe's checkpoint, exactly as
if never stopped: the papers' 120k-step schedule takes hours on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.reproduce import capacity_order, training
from analysis.reproduce.training import (
    FINAL,
    HISTORY,
    RESUME,
    latest_checkpoint,
    run_all,
    train_run,
)
from betavae.config import TrainConfig

OPTIONS = {"threads": 1, "log_every": 10, "probe_every": 20}
KEPT = Path(__file__).parents[2] / "docs" / "data" / "beta-ladder-20000" / "runs"


class Killed(Exception):
    pass


def rows(folder):
    """History rows without their wall-clock fields."""
    out = []
    for row in training.history(folder):  # a torn line skipped
        for clock in ("train_seconds", "images_per_s"):
            row.pop(clock, None)
        out.append(row)
    return out


def test_a_run_killed_between_its_history_and_its_checkpoint_continues_exactly(
    tmp_path, monkeypatch, capsys
):
    config = TrainConfig(
        steps=60, latent_dim=4, objective="capacity", capacity_max=5.0,
        capacity_anneal_steps=60, seed=3,
    ).to_dict()  # fmt: skip
    whole = train_run(config, str(tmp_path / "whole"), **OPTIONS)

    # Killed after step 40's history lines were written, before its checkpoint: the run
    # restarts from step 20 and the lines of steps 30 and 40 are trained again.
    cut = tmp_path / "runs" / "cut"
    real, calls = training._checkpoint, []

    def checkpoint(trainer, folder):
        calls.append(trainer.step)
        if len(calls) == 2:
            raise Killed
        real(trainer, folder)

    monkeypatch.setattr(training, "_checkpoint", checkpoint)
    with pytest.raises(Killed):
        train_run(config, str(cut), **OPTIONS)
    monkeypatch.undo()
    assert latest_checkpoint(cut)[0] == 20 and not (cut / FINAL).exists()
    assert [r["step"] for r in rows(cut)] == [10, 20, 30, 40]
    with (cut / HISTORY).open("a") as history:
        history.write('{"step": 50, "recon')  # and a line torn by the kill

    # --partial: the run as it stands, read at its last probe, and the report says so.
    partial = run_all([("cut", config)], tmp_path / "runs", workers=1, cores=1, partial=True)
    assert partial["cut"]["partial_step"] == 40
    assert partial["cut"]["information"] == rows(cut)[-1]["information"]
    result = capacity_order.analyse(partial, tmp_path, ignore_input=3000.0)
    text = capacity_order.markdown(result, {"summary": "test"})
    assert "Unfinished: read at its last probe, step 40" in text
    assert (tmp_path / "cut.png").is_file()

    again = train_run(config, str(cut), **OPTIONS)

    assert "cut: resumed at step 20 of 60" in capsys.readouterr().out
    assert rows(cut) == rows(tmp_path / "whole")
    probes = [r for r in rows(cut) if "information" in r]
    assert [r["step"] for r in probes] == [20, 40, 60]
    for key in ("recon_nll", "kl", "kl_per_dim", "information"):
        assert again[key] == whole[key], key
    assert not (cut / RESUME).exists() and (cut / "checkpoint").is_dir()


def test_a_second_process_on_the_same_run_is_refused_and_the_run_left_whole(tmp_path):
    # A worker left training after its parent was killed and the rerun's worker both wrote
    # one run's history: the probe line they collided on was torn.
    import fcntl

    config = TrainConfig(steps=20, latent_dim=4, objective="capacity", seed=3).to_dict()
    run = tmp_path / "run"
    run.mkdir()
    with (run / training.LOCK).open("a") as held:  # the first process, mid-training
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RuntimeError, match="another process is training this run"):
            train_run(config, str(run), **OPTIONS)
        assert not (run / HISTORY).exists() and latest_checkpoint(run) is None
    record = train_run(config, str(run), **OPTIONS)  # released: it trains
    assert (run / FINAL).is_file() and record["config"]["steps"] == 20


def test_a_finished_run_of_another_length_is_refused_not_reused(tmp_path):
    # `--steps 5000` on an --out holding the 20,000-step ladder read the 20,000-step runs back
    # and reported them as 5,000-step ones.
    import shutil
    import subprocess
    import sys

    shutil.copytree(KEPT / "beta16-seed0", tmp_path / "runs" / "beta16-seed0")
    before = (tmp_path / "runs" / "beta16-seed0" / FINAL).read_text()

    def ladder(steps):
        return subprocess.run(
            [sys.executable, "-m", "analysis.reproduce", "beta-ladder", "--out", str(tmp_path),
             "--steps", str(steps), "--betas", "16", "--seeds", "0"],
            capture_output=True, text=True,
        )  # fmt: skip

    refused = ladder(5000)
    assert refused.returncode == 1
    assert (
        f"python -m analysis.reproduce: error: {tmp_path / 'runs' / 'beta16-seed0'} holds a run "
        "trained with another configuration"
    ) in refused.stderr
    assert "steps 20000 there, 5000 asked" in refused.stderr
    assert "Give another --out, or delete" in refused.stderr
    assert not (tmp_path / "report.md").exists()
    assert (tmp_path / "runs" / "beta16-seed0" / FINAL).read_text() == before

    reused = ladder(20000)  # the same protocol: read back, not trained
    assert reused.returncode == 0, reused.stderr
    assert "20,000 steps" in (tmp_path / "report.md").read_text()


def test_a_run_kept_from_before_a_field_was_added_is_reused_and_one_removed_is_named(tmp_path):
    """final.json written before TrainConfig gained a field (with a default) is the same run;
    one holding a field TrainConfig no longer has is not, and the message names the field."""
    import json
    import shutil

    folder = tmp_path / "beta16-seed0"
    shutil.copytree(KEPT / "beta16-seed0", folder)
    record = json.loads((folder / FINAL).read_text())
    asked = dict(record["config"])
    older = {k: v for k, v in record["config"].items() if k != "compile"}
    assert older != asked and asked["compile"] == TrainConfig().compile

    (folder / FINAL).write_text(json.dumps({**record, "config": older}))
    training.check_same_run(folder, asked)  # reused

    (folder / FINAL).write_text(json.dumps({**record, "config": {**asked, "dropout": 0.1}}))
    with pytest.raises(training.RunMismatch, match=r"dropout 0\.1 there, None asked"):
        training.check_same_run(folder, asked)


def test_a_resumable_run_of_another_configuration_is_refused_before_anything_trains(tmp_path):
    from betavae.checkpoint import save_checkpoint
    from betavae.data import load_dataset
    from betavae.training import Trainer

    def config(gamma, seed=3):
        return TrainConfig(
            steps=40, latent_dim=4, objective="capacity", gamma=gamma, seed=seed
        ).to_dict()

    runs = tmp_path / "runs"
    trainer = Trainer(TrainConfig.from_dict(config(100.0)), load_dataset("dsprites"))
    save_checkpoint(trainer, runs / "b" / RESUME / "step_000020")
    jobs = [("a", config(1000.0, seed=4)), ("b", config(1000.0))]

    with pytest.raises(training.RunMismatch, match=r"gamma 100\.0 there, 1000\.0 asked"):
        run_all(jobs, runs, workers=1, cores=1, log_every=10, probe_every=20)
    assert not (runs / "a").exists()  # checked before the first run trained


def test_a_worker_stops_when_the_command_that_started_it_is_killed(tmp_path):
    # `kill PARENT` reached only the parent: its worker trained on for an hour, holding the
    # run's lock, until found by hand.
    import os
    import signal
    import subprocess
    import sys
    import time

    parent = subprocess.Popen(
        [sys.executable, "-c", (
            "import os, time\n"
            "from analysis.reproduce.training import worker_pool\n"
            "pool = worker_pool(1)\n"
            "print(pool.submit(os.getpid).result(), flush=True)\n"
            "pool.submit(time.sleep, 600)\n"
            "time.sleep(600)\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    with parent:
        worker = int(parent.stdout.readline())
        parent.send_signal(signal.SIGTERM)  # what `kill` and `pkill -f` send
        parent.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    pytest.fail(f"worker {worker} still ran 20 s after its parent was killed")


def test_a_probe_splits_each_latents_kl_into_its_means_spread_and_its_posteriors_narrowness(
    tmp_path,
):
    # At γ = 1000 the position latents' KL grew from 2.5 to 12.7 nats while their information
    # stayed flat: 97% of it was the variance term (posterior σ ≈ e^-12.7), not spread means.
    import numpy as np

    config = TrainConfig(steps=40, latent_dim=4, objective="capacity", capacity_max=5.0,
                         capacity_anneal_steps=40, seed=3).to_dict()  # fmt: skip
    final = train_run(config, str(tmp_path / "run"), **OPTIONS)
    terms = np.add(final["kl_mean_term"], final["kl_variance_term"])
    # The probe's images are not the evaluation's: the two KLs agree, not to the bit.
    assert np.allclose(terms, final["kl_per_dim"], rtol=0.1, atol=0.05), (terms, final)
    assert min(final["kl_mean_term"]) >= 0 and min(final["kl_variance_term"]) >= 0
    probes = [r for r in training.history(tmp_path / "run") if "information" in r]
    assert [r["step"] for r in probes] == [20, 40]
    assert all(len(r["kl_mean_term"]) == len(r["kl_variance_term"]) == 4 for r in probes)
