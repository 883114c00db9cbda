"""Load a sweep — from MLflow or from a Tune results folder — as one table, a row per trial.

Both sources give the same columns (:data:`COLUMNS` plus one float column per ``metric.*``
score), the sweep's settings (metric, budget, objective, preset, …), and per-trial access to
curves and pictures, so the report does not care where a sweep was read from.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from analysis.redaction import redact
from analysis.schema import (
    PARAMS,
    PARENT_TAG,
    ROLE_TAG,
    SCORING_TAG,
    SETTING_TAG,
    SETTINGS_FILE,
    SWEEP_DIR_TAG,
    TRIAL_ID_TAG,
    anneal_steps,
    setting_id,
)
from analysis.trial_files import (
    UDR_CODES_DIR,
    UDR_CODES_SUFFIX,
    expand_curve,
    folder_trial_id,
    read_udr_codes,
)

#: Columns every trial table has, in order (``metric.*`` columns follow, sorted).
COLUMNS: dict[str, pa.DataType] = {
    "trial_id": pa.string(),
    "run_id": pa.string(),
    "run_name": pa.string(),
    "status": pa.string(),  # FINISHED, FAILED or RUNNING (not finished)
    "error": pa.string(),
    "setting": pa.string(),  # shared by the seed replicates of one setting
    "objective": pa.string(),  # the family: beta or capacity
    "beta": pa.float64(),
    "gamma": pa.float64(),
    "capacity_max": pa.float64(),
    "capacity_anneal_steps": pa.int64(),
    "anneal_fraction": pa.float64(),
    "latent_dim": pa.int64(),
    "seed": pa.int64(),
    "replicate": pa.int64(),
    "steps": pa.int64(),
    "batch_size": pa.int64(),
    "lr": pa.float64(),
    "dataset": pa.string(),
    "model": pa.string(),
    "recon_nll": pa.float64(),
    "kl": pa.float64(),
    "active_latents": pa.float64(),
    "feasible": pa.bool_(),
}


class SweepNotFound(LookupError):
    """The experiment or folder named holds no sweep."""


@dataclass
class Sweep:
    """One sweep: its trials as a table and its settings."""

    trials: pa.Table
    settings: dict[str, Any]
    source: str
    _curves: Any = field(default=None, repr=False)
    _artifact: Any = field(default=None, repr=False)

    @property
    def metric(self) -> str:
        return str(self.settings.get("metric_key") or "metric.mig")

    @property
    def recon_budget(self) -> float | None:
        value = self.settings.get("recon_budget")
        return None if value is None else float(value)

    @property
    def scoring(self) -> dict[str, Any] | None:
        """How the sweep's scores were measured (``betavae.metrics.describe_mode``), if known."""
        value = self.settings.get("scoring")
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return None
        return value if isinstance(value, dict) else None

    def rows(self) -> list[dict[str, Any]]:
        return self.trials.to_pylist()

    def curves(self, trial_id: str) -> list[dict[str, Any]]:
        """The trial's intermediate results, by step: ``step`` and ``train/…`` keys."""
        return self._curves(trial_id) if self._curves else []

    def artifact(self, trial_id: str, name: str) -> Path | None:
        """A local path to one of the trial's pictures (e.g. ``traversals.png``), or None."""
        return self._artifact(trial_id, name) if self._artifact else None


def write_parquet(sweep: Sweep, path: str | Path) -> Path:
    path = Path(path)
    meta = {b"betavae.sweep": json.dumps(sweep.settings, sort_keys=True).encode()}
    table = sweep.trials.replace_schema_metadata({**(sweep.trials.schema.metadata or {}), **meta})
    pq.write_table(table, path)
    return path


def _to_type(value: Any, kind: pa.DataType) -> Any:
    if value is None or value == "n/a" or value == "":
        return None
    try:
        if pa.types.is_floating(kind):
            return float(value)
        if pa.types.is_integer(kind):
            return int(float(value))
        if pa.types.is_boolean(kind):
            return bool(float(value)) if not isinstance(value, str) else value.lower() == "true"
    except (TypeError, ValueError):
        return None
    return str(value)


def build_table(records: Iterable[dict[str, Any]]) -> pa.Table:
    """Records (any keys) → the trial table: :data:`COLUMNS` + sorted ``metric.*`` floats."""
    records = list(records)
    metric_keys = sorted({k for r in records for k in r if k.startswith("metric.")})
    schema = pa.schema([*COLUMNS.items(), *((k, pa.float64()) for k in metric_keys)])
    columns = {}
    for name, kind in zip(schema.names, schema.types, strict=True):
        values = [_to_type(r.get(name), kind) for r in records]
        if pa.types.is_floating(kind):
            values = [v if v is None or math.isfinite(v) else None for v in values]
        columns[name] = pa.array(values, type=kind)
    return pa.table(columns, schema=schema)


# -- MLflow ---------------------------------------------------------------------------------
def load_mlflow(tracking_uri: str, experiment: str, parent_run_id: str | None = None) -> Sweep:
    """The sweep logged to ``experiment``: its parent run's settings, a row per child run.

    With several sweeps in one experiment (same name, other storage paths) the latest is
    read, unless ``parent_run_id`` names one.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SweepNotFound(f"no MLflow experiment named {experiment!r} at {redact(tracking_uri)}")
    if parent_run_id is not None:
        parents = [client.get_run(parent_run_id)]
    else:
        parents = search_all_runs(client, exp.experiment_id, f"tags.`{ROLE_TAG}` = 'sweep'")
    if not parents:
        raise SweepNotFound(
            f"experiment {experiment!r} at {redact(tracking_uri)} holds no sweep run"
        )
    parent = max(parents, key=lambda r: r.info.start_time)
    children = child_runs(client, exp.experiment_id, parent.info.run_id)
    return sweep_from_runs(client, f"mlflow:{redact(tracking_uri)}#{experiment}", parent, children)


def child_runs(client: Any, experiment_id: str, parent_run_id: str) -> list:
    """The trial runs of the sweep whose parent run is ``parent_run_id``: one search, filtered
    by the store (an experiment can hold other sweeps' runs)."""
    return search_all_runs(client, experiment_id, f"tags.`{PARENT_TAG}` = '{parent_run_id}'")


def search_all_runs(client: Any, experiment_id: str, filter_string: str = "") -> list:
    """Every active run of the experiment that ``filter_string`` selects, page by page."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def sweep_from_runs(client: Any, source: str, parent: Any, children: list) -> Sweep:
    """The sweep of ``parent`` (an MLflow ``Run``) and its ``children`` (already read: the
    sweep's end compares them with Tune's results and summarises them, one read for both);
    curves and pictures are fetched from ``client`` when the report asks for them."""
    records = []
    for run in children:
        tags, params = run.data.tags, run.data.params
        status = run.info.status if run.info.status in ("FINISHED", "FAILED") else "RUNNING"
        records.append(
            {
                **{k: params.get(k) for k in PARAMS},
                **run.data.metrics,
                "trial_id": tags.get(TRIAL_ID_TAG),
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "status": status,
                "error": tags.get("error"),
                "setting": tags.get(SETTING_TAG),
            }
        )
    settings = _parent_settings(parent)
    by_trial = {r["trial_id"]: r["run_id"] for r in records}
    cache: dict[tuple[str, str], Path | None] = {}

    def curves(trial_id: str) -> list[dict[str, Any]]:
        run_id = by_trial[trial_id]
        run = client.get_run(run_id)
        rows: dict[int, dict[str, Any]] = {}
        for key in run.data.metrics:
            if key.startswith("train/"):
                for m in client.get_metric_history(run_id, key):
                    rows.setdefault(m.step, {"step": m.step})[key] = m.value
        return [rows[s] for s in sorted(rows)]

    # A report reads a few small files per trial: no progress bar for each on the console.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    def artifact(trial_id: str, name: str) -> Path | None:
        if (trial_id, name) not in cache:
            try:
                local = client.download_artifacts(by_trial[trial_id], name)
                cache[trial_id, name] = Path(local)
            except Exception:
                cache[trial_id, name] = None
        return cache[trial_id, name]

    settings["parent_run_id"] = parent.info.run_id
    return Sweep(build_table(records), settings, source, curves, artifact)


def _parent_settings(parent: Any) -> dict[str, Any]:
    tags, params = parent.data.tags, parent.data.params
    settings: dict[str, Any] = {k: params[k] for k in params}
    settings.update(
        {
            "name": params.get("name"),
            "preset": tags.get("preset"),
            "objective": tags.get("objective"),
            "metric_key": tags.get("metric"),
            "recon_budget": _to_type(tags.get("recon_budget"), pa.float64()),
            "git_commit": tags.get("git_commit"),
            "sweep_dir": tags.get(SWEEP_DIR_TAG),
            "scoring": tags.get(SCORING_TAG),
        }
    )
    return settings


# -- Tune results folder ---------------------------------------------------------------------
def load_tune(folder: str | Path) -> Sweep:
    """The sweep in a Tune experiment folder (``ray_results/NAME``) written by the sweep."""
    root = Path(folder)
    sweep_file = root / SETTINGS_FILE
    if not sweep_file.is_file():
        raise SweepNotFound(f"{root}: not a sweep folder (no sweep.json)")
    saved = json.loads(sweep_file.read_text())
    settings = {**saved.get("settings", {}), "scoring": saved.get("scoring")}
    settings["metric_key"] = saved.get("metric_key") or metric_key(settings.get("metric", "mig"))
    records, dirs = [], {}
    for trial_dir in sorted(p for p in root.iterdir() if (p / "params.json").is_file()):
        config = json.loads((trial_dir / "params.json").read_text())
        rows = _result_rows(trial_dir / "result.json")
        final = next((r for r in reversed(rows) if r.get("final") or r.get("error")), None)
        trial_id = rows[-1]["trial_id"] if rows else folder_trial_id(trial_dir.name)
        error = (final or {}).get("error")
        if error is None and (trial_dir / "error.txt").is_file():
            lines = (trial_dir / "error.txt").read_text().strip().splitlines()
            error = next((x for x in reversed(lines) if x and not x.startswith(" ")), "failed")
        status = "FAILED" if error else ("FINISHED" if final else "RUNNING")
        train = _train_values(config)
        records.append(
            {
                **config,
                **train,
                **(final or {}),
                "trial_id": trial_id,
                "run_id": None,
                "run_name": trial_dir.name,
                "status": status,
                "error": error,
                "setting": setting_id(config),
            }
        )
        dirs[trial_id] = trial_dir
    score_udr(records, local_udr_codes(root / UDR_CODES_DIR))

    def curves(trial_id: str) -> list[dict[str, Any]]:
        rows = _result_rows(dirs[trial_id] / "result.json")
        return [
            {k: v for k, v in expand_curve(r).items() if k == "step" or k.startswith("train/")}
            for r in rows
            if any(k.startswith("train/") for k in r)
        ]

    def artifact(trial_id: str, name: str) -> Path | None:
        found = sorted(dirs[trial_id].glob(f"checkpoint_*/artifacts/{name}"))
        return found[-1] if found else None

    return Sweep(build_table(records), settings, f"tune:{redact(str(root))}", curves, artifact)


def score_udr(records: list[dict[str, Any]], codes_of: Callable[[str], Any]) -> None:
    """Set ``metric.udr`` of every finished trial in ``records`` whose codes ``codes_of(trial
    id)`` returns (``(codes, kl)``, or None): its setting's finished seeds scored against each
    other, all of them (``betavae.metrics.setting_udr``). A setting whose codes UDR refuses
    (NaN) is left unscored, with a warning naming it."""
    from betavae.metrics import setting_udr

    settings: dict[str, list[tuple[dict[str, Any], tuple[Any, Any]]]] = {}
    for record in records:
        if record["status"] == "FINISHED" and (codes := codes_of(record["trial_id"])) is not None:
            settings.setdefault(record["setting"], []).append((record, codes))
    for setting, seeds in settings.items():
        try:
            scores = setting_udr([c for _, (c, _) in seeds], [kl for _, (_, kl) in seeds])
        except ValueError as err:
            print(f"warning: setting {setting}: UDR not scored ({err})", file=sys.stderr)
            continue
        for (record, _), score in zip(seeds, scores, strict=True):
            if score is not None:
                record["metric.udr"] = score


def local_udr_codes(folder: Path) -> Callable[[str], Any]:
    """A ``codes_of`` for :func:`score_udr`: the codes a trial left in ``folder`` (a sweep's
    ``udr_codes/``); None when it left none or they cannot be read."""

    def codes_of(trial_id: str) -> Any:
        path = folder / f"{trial_id}{UDR_CODES_SUFFIX}"
        try:
            return read_udr_codes(path.read_bytes()) if path.is_file() else None
        except Exception as err:  # torn by a crash: that seed cannot be scored
            print(f"warning: {path}: UDR codes not read ({err})", file=sys.stderr)
            return None

    return codes_of


def _result_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a crash
            continue
    return rows


def _train_values(config: dict[str, Any]) -> dict[str, Any]:
    """Searched config → the trained values, as the MLflow params hold them (anneal in steps;
    the values the family does not use null)."""
    values: dict[str, Any] = {"lr": config.get("lr")}
    if config.get("objective") == "capacity":
        values.update(beta=None)
        if "anneal_fraction" in config and "steps" in config:
            values["capacity_anneal_steps"] = anneal_steps(
                config["anneal_fraction"], config["steps"]
            )
    else:
        values.update(gamma=None, capacity_max=None, capacity_anneal_steps=None)
    return values


def metric_key(metric: str) -> str:
    """The key of a searched metric's headline score (``dci`` → ``metric.dci.disentanglement``)."""
    return "metric.dci.disentanglement" if metric == "dci" else f"metric.{metric}"


def load(source: str, experiment: str | None = None) -> Sweep:
    """``load("ray_results/NAME")`` (a Tune folder) or ``load(URI, experiment=NAME)``."""
    if experiment is not None:
        return load_mlflow(source, experiment)
    return load_tune(source)
