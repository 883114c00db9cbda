"""A resumed sweep is the sweep it started as: the settings its ``sweep.json`` holds, whatever
the preset says today; a search flag that differs is refused, how-to-run flags are taken.
(The resume itself, after kills: tests/e2e/test_sweep_resume.py.)"""

from __future__ import annotations

import pytest

from sweeps.config import UsageError, parse_settings


def test_a_sweep_started_before_a_setting_existed_resumes_with_its_default(tmp_path):
    """``sweep.json`` of an older sweep lacks newer search settings: it ran with their
    defaults, so resuming with the default is allowed and with another value refused."""
    import json

    from sweeps.driver.resume import decide_resume
    from sweeps.store import SweepFolder

    argv = ["--storage-path", str(tmp_path), "--name", "old", "--resume"]
    search = parse_settings(argv).search_settings()
    del search["eval_images"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "sweep.json").write_text(json.dumps({"search": search}))
    folder = SweepFolder(str(tmp_path), "old")
    decide_resume(parse_settings(argv), folder)
    with pytest.raises(UsageError, match="--eval-images: the sweep was started with 10000"):
        decide_resume(parse_settings([*argv, "--eval-images", "5000"]), folder)


def _sweep_started_with(tmp_path, settings):
    """A sweep folder holding ``settings``' sweep.json, as the driver writes it."""
    import json

    from sweeps.config.settings import sweep_record
    from sweeps.store import SweepFolder

    (tmp_path / settings.name).mkdir(parents=True)
    (tmp_path / settings.name / "sweep.json").write_text(json.dumps(sweep_record(settings)))
    return SweepFolder(str(tmp_path), settings.name)


def test_a_resumed_sweep_keeps_the_settings_it_started_with_after_its_preset_changed(
    tmp_path, capsys
):
    """A paper sweep started under an older paper preset (γ = 1000, its starting point too)
    resumes with the KubeRay manifest's own command line, ``--preset paper --resume auto``: as
    the sweep it was, and says so; a flag that asks for today's γ range is refused."""
    import dataclasses

    from sweeps.driver.resume import decide_resume

    where = ["--storage-path", str(tmp_path), "--name", "paper-2026"]
    today = parse_settings(["--preset", "paper", *where])
    older_points = tuple(
        {**p, "gamma": 1000.0} if p["objective"] == "capacity" else p for p in today.initial_points
    )
    started = dataclasses.replace(
        today, gamma_range=(1000.0, 1000.0), initial_points=older_points, max_concurrent=8
    )
    folder = _sweep_started_with(tmp_path, started)

    resumed = decide_resume(
        parse_settings(["--preset", "paper", "--resume", "auto", *where]), folder
    )
    assert resumed.resume is True
    assert resumed.search_settings() == started.search_settings()
    assert resumed.max_concurrent == 8  # how it ran, too, unless the command line says
    said = capsys.readouterr().err
    assert "resuming 'paper-2026' with the settings it started with" in said
    assert "--gamma-range 1000.0,1000.0 (not 20.0,200.0)" in said
    assert "starting points objective=capacity capacity_max=25 anneal_fraction=0.333333 " \
           "gamma=1000 latent_dim=10 (not " in said  # fmt: skip

    given = parse_settings(["--preset", "paper", "--resume", "--max-concurrent", "4", *where])
    assert decide_resume(given, folder).max_concurrent == 4  # how to run: taken
    with pytest.raises(UsageError, match=r"--gamma-range: the sweep was started with \[1000.0"):
        decide_resume(parse_settings(["--preset", "paper", "--resume", *where,
                                      "--gamma-range", "20,200"]), folder)  # fmt: skip


def test_a_resume_without_the_preset_is_the_sweep_it_was_and_another_preset_is_refused(
    tmp_path,
):
    """``--resume`` alone continues a paper sweep as a paper sweep (its steps, its GPU share),
    not as the cpu preset would; ``--preset cpu --resume`` on it stops with a message."""
    from sweeps.driver.resume import decide_resume

    where = ["--storage-path", str(tmp_path), "--name", "p"]
    started = parse_settings(["--preset", "paper", "--num-samples", "16", *where])
    folder = _sweep_started_with(tmp_path, started)

    resumed = decide_resume(parse_settings(["--resume", *where]), folder)
    assert (resumed.preset, resumed.steps, resumed.num_samples) == ("paper", 300_000, 16)
    assert (resumed.gpus_per_trial, resumed.checkpoint_every) == (0.25, 10_000)
    assert resumed.initial_points == started.initial_points
    with pytest.raises(UsageError, match="--preset: the sweep was started with 'paper', got 'cpu'"):
        decide_resume(parse_settings(["--preset", "cpu", "--resume", *where]), folder)
