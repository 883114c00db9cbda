"""Frontier reports from synthetic sweeps: files, schema, and agreement with the parquet."""

from __future__ import annotations

import html
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from analysis.frontier import format_summary, frontier_rows, summary_lines
from analysis.pareto import hypervolume
from analysis.report import SCHEMA, EmptySweep, main, write_report
from analysis.runs import COLUMNS, Sweep, build_table

SETTINGS = {
    "name": "synthetic",
    "preset": "cpu",
    "objective": "constrained",
    "metric_key": "metric.mig",
    "recon_budget": 110.0,
}


def trial(i, *, beta=None, cmax=None, recon=100.0, mig=0.1, seed=0, status="FINISHED", error=None):
    family = "beta" if beta is not None else "capacity"
    row = {
        "trial_id": f"t{i:02d}",
        "run_id": f"r{i:02d}",
        "run_name": f"trial-{i}",
        "status": status,
        "error": error,
        "setting": f"s{beta}{cmax}",
        "objective": family,
        "beta": beta,
        "capacity_max": cmax,
        "gamma": None if beta else 100.0,
        "capacity_anneal_steps": None if beta else 600,
        "latent_dim": 10,
        "seed": seed,
        "replicate": seed,
        "steps": 1200,
        "batch_size": 64,
        "lr": 5e-4,
        "dataset": "dsprites",
        "model": "burgess",
    }
    if status == "FINISHED":
        row.update(
            {
                "recon_nll": recon,
                "kl": 9.0,
                "metric.mig": mig,
                "metric.sap": mig / 2,
                "feasible": recon <= 110.0,
                "active_latents": 4.0,
            }
        )
    return row


def sweep_of(rows):
    return Sweep(build_table(rows), dict(SETTINGS), "synthetic")


def random_sweep(seed=0, n=30):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        if i % 7 == 6:
            rows.append(trial(i, beta=2.0, status="FAILED", error="diverged: loss is not finite"))
            continue
        recon = float(rng.choice([90.0, 100.0, 120.0, rng.uniform(80, 160)]))
        mig = float(rng.choice([0.05, 0.1, rng.uniform(0, 0.3)]))
        if i % 2:
            rows.append(trial(i, beta=float(rng.uniform(1, 32)), recon=recon, mig=mig, seed=i % 3))
        else:
            rows.append(trial(i, cmax=float(rng.uniform(0, 100)), recon=recon, mig=mig))
    rows.append(dict(rows[0], trial_id="dup", run_id="rdup"))  # an exact duplicate point
    return sweep_of(rows)


def test_report_files_and_schema(tmp_path):
    doc = write_report(random_sweep(), tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {
        "report.html",
        "report.md",
        "frontier.json",
        "trials.parquet",
        "frontier.png",
        "seed_spread.png",
        "kl_curves.png",
        "traversals.png",
        "metric_correlation.png",
    } <= names
    on_disk = json.loads((tmp_path / "frontier.json").read_text())
    assert on_disk["schema"] == SCHEMA == doc["schema"] == "betavae.frontier/2"
    assert on_disk == json.loads(json.dumps(doc, default=str))
    assert on_disk["objectives"] == [
        {"key": "metric.mig", "direction": "max"},
        {"key": "recon_nll", "direction": "min"},
    ]
    assert on_disk["sweep"]["recon_budget"] == 110.0
    assert on_disk["hypervolume"]["reference"] == {"metric.mig": 0.0, "recon_nll": 110.0}
    for setting in on_disk["frontier"]:
        assert setting["on_frontier"] and setting["seeds"] >= 1
        assert set(setting["metric"]) == {"median", "min", "max"}
        assert all(t in {x["trial_id"] for x in on_disk["trials"]} for t in setting["trial_ids"])
    assert len(on_disk["trials"]) == on_disk["counts"]["trials"] == 31
    assert on_disk["counts"]["failed"] == len(on_disk["failed"]) == 4
    assert all(f["error"].startswith("diverged") for f in on_disk["failed"])
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5
    assert 'src="http' not in html and "<script" not in html and "<link" not in html
    md = (tmp_path / "report.md").read_text()
    assert "![frontier](frontier.png)" in md and "## Failed trials" in md


def _median(values):
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def test_frontier_json_agrees_with_a_brute_force_computation_on_the_parquet(tmp_path):
    """Settings, medians, feasibility, frontier, best and hypervolume recomputed from
    trials.parquet with plain loops."""
    write_report(random_sweep(seed=3), tmp_path)
    doc = json.loads((tmp_path / "frontier.json").read_text())
    table = pq.read_table(tmp_path / "trials.parquet").to_pylist()
    assert set(COLUMNS) <= set(table[0])
    groups = {}
    for r in table:
        if r["status"] == "FINISHED" and r["metric.mig"] is not None:
            groups.setdefault(r["setting"], []).append(r)
    medians = {
        k: (_median([r["metric.mig"] for r in v]), _median([r["recon_nll"] for r in v]))
        for k, v in groups.items()
    }
    feasible = {k for k, v in groups.items() if all(r["recon_nll"] <= 110.0 for r in v)}
    front = set()
    for k, (m, r) in medians.items():
        beaten = any(m2 >= m and r2 <= r and (m2 > m or r2 < r) for k2, (m2, r2) in medians.items())
        if not beaten:
            front.add(k)
    settings = {s["setting"]: s for s in doc["settings"]}
    for k, (m, r) in medians.items():
        assert settings[k]["metric"]["median"] == pytest.approx(m)
        assert settings[k]["recon_nll"]["median"] == pytest.approx(r)
        assert settings[k]["seeds"] == len(groups[k])
        assert settings[k]["feasible"] == (k in feasible)
    assert {s["setting"] for s in doc["frontier"]} == front
    best = max(feasible, key=lambda k: (medians[k][0], -medians[k][1]))
    assert doc["best_feasible"]["setting"] == best
    hv = hypervolume(list(medians.values()), [0.0, 110.0], [True, False])
    assert doc["hypervolume"]["value"] == pytest.approx(hv)


def test_printed_summary_report_and_document_agree(tmp_path):
    """A sweep with NaN scores, failures and tied settings: the printed summary, report.md
    and report.html show the document's own lines and frontier rows."""
    rows = [
        trial(0, beta=2.0, recon=100.0, mig=0.2, seed=0),
        trial(1, beta=2.0, recon=104.0, mig=0.1, seed=1),
        trial(2, beta=4.0, recon=100.0, mig=0.2, seed=0),  # β=4 ties β=2 on both medians
        trial(3, beta=4.0, recon=104.0, mig=0.1, seed=1),
        trial(4, beta=8.0, recon=float("nan"), mig=0.4, seed=0),
        trial(5, beta=8.0, status="FAILED", error="diverged: loss is not finite"),
    ]
    doc = write_report(sweep_of(rows), tmp_path)
    assert {s["label"] for s in doc["frontier"]} == {"β=2, z=10", "β=4, z=10"}  # a tie
    printed = format_summary(doc)
    md = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    for line in summary_lines(doc):
        assert line in printed and line in md and html.escape(line) in page
    for row in frontier_rows(doc):
        assert "  ".join(row).split()[0] in printed
        assert "| " + " | ".join(row) in md
    assert doc["counts"]["scored"] == 4 and doc["counts"]["failed"] == 1


def test_all_failed_sweep_gives_a_clear_report(tmp_path):
    rows = [trial(i, beta=4.0, status="FAILED", error="RuntimeError: boom") for i in range(3)]
    doc = write_report(sweep_of(rows), tmp_path)
    assert doc["frontier"] == [] and doc["best_feasible"] is None and doc["hypervolume"] is None
    assert doc["counts"] == {
        "trials": 3,
        "finished": 0,
        "scored": 0,
        "failed": 3,
        "running": 0,
        "feasible_trials": 0,
        "settings": 1,
        "scored_settings": 0,
        "feasible_settings": 0,
    }
    md = (tmp_path / "report.md").read_text()
    assert "No trial finished with scores: the frontier is empty." in md
    assert md.count("RuntimeError: boom") == 3


def test_empty_sweep_is_a_clear_error(tmp_path):
    with pytest.raises(EmptySweep, match="has no trials yet"):
        write_report(sweep_of([]), tmp_path)


def test_cli_names_a_missing_experiment_or_folder(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    assert main(["--tracking-uri", uri, "--experiment", "nope", "--out", str(tmp_path)]) == 2
    assert "no MLflow experiment named 'nope'" in capsys.readouterr().err
    assert main(["--tune-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a sweep folder" in capsys.readouterr().err


def test_the_report_command_starts_without_torch_ray_or_sweeps():
    """analysis reads a sweep's record through analysis.schema: no training stack needed."""
    import subprocess
    import sys

    probe = (
        "import sys, analysis.report, analysis.frontier, analysis.runs; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray', 'sweeps'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_sweep_of_thousands_of_settings_plots_legibly_in_bounded_time(tmp_path):
    """The seed plot keeps the best SPREAD_ROWS settings (the frontier plot's dense mode is
    checked against the document in the test below)."""
    from PIL import Image

    from analysis import plots
    from analysis.report import build_document

    rng = np.random.default_rng(1)
    rows = []
    for i in range(2000):
        recon, mig = float(rng.uniform(80, 160)), float(rng.uniform(0, 0.3))
        rows.append(trial(i, beta=float(rng.uniform(1, 32)), recon=recon, mig=mig))
    for i, row in enumerate(rows):
        row["trial_id"], row["run_id"], row["setting"] = f"t{i}", f"r{i}", f"s{i}"
    doc = build_document(sweep_of(rows))
    assert len(doc["settings"]) == 2000
    plots.seed_spread(doc, tmp_path / "seed_spread.png")
    with Image.open(tmp_path / "seed_spread.png") as spread:
        width, height = spread.size
    assert height < 3 * width, (width, height)  # 60 rows, not 2,000 (a figure 640 inches high)


@pytest.mark.parametrize("settings", [30, 310])  # drawn one by one, and as a density
def test_the_frontier_plot_draws_the_documents_points(tmp_path, monkeypatch, settings):
    """Read from the figure's data (not its pixels): each drawn setting's median is at the
    document's (recon_nll, metric) medians, and the frontier line runs through the document's
    frontier settings, in order."""
    from analysis import plots
    from analysis.report import build_document

    rng = np.random.default_rng(settings)
    rows = []
    for i in range(settings):  # three seeds a setting: median, min and max differ
        beta = float(rng.uniform(1, 32))
        for seed in range(3):
            recon, mig = float(rng.uniform(80, 160)), float(rng.uniform(0, 0.3))
            rows.append(trial(i, beta=beta, recon=recon, mig=mig, seed=seed))
            rows[-1].update(trial_id=f"t{i}-{seed}", run_id=f"r{i}-{seed}", setting=f"s{i}")
    doc = build_document(sweep_of(rows))
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    plots.frontier(doc, tmp_path / "frontier.png")
    (ax,) = [a for a in figures[0].axes if a.get_xlabel().startswith("reconstruction")]

    medians = {  # the large median markers (size 52), one per drawn setting
        tuple(np.round(point, 9))
        for c in ax.collections
        if hasattr(c, "get_sizes") and len(c.get_sizes()) and c.get_sizes()[0] == 52
        for point in c.get_offsets()
    }
    drawn = doc["settings"] if settings <= plots.DENSE_SETTINGS else doc["frontier"]
    expected = {
        (round(s["recon_nll"]["median"], 9), round(s["metric"]["median"], 9)) for s in drawn
    }
    assert medians == expected
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("frontier")]
    front = doc["frontier"]
    assert list(line.get_xdata()) == [s["recon_nll"]["median"] for s in front]
    assert list(line.get_ydata()) == [s["metric"]["median"] for s in front]
