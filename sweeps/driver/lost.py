"""Trials a killed driver started after its last Tune snapshot, which a resumed Tune never holds.

Tune snapshots its trials every 10 s or more (``sweeps.driver.snapshot``). A driver killed
with ``kill -9`` (a lost head, ``ray job stop`` past its grace) may have started trials since,
and even finished them: their Optuna trials, MLflow runs and folders exist, but the resumed
Tune does not know them, so nothing would ever end them. Their folders decide:

- at a resume (``tell_or_fail``), each such Optuna trial still RUNNING is told the final result
  its folder's newest checkpoint holds when the trial finished, and otherwise ends FAIL as lost
  (``sweeps.search.study.LOST_REASON``); the searcher counts the finished ones towards
  ``--num-samples`` and asks for others in place of the lost (``sweeps.search.searcher``;
  Tune's generator must not have counted them: ``sweeps.driver.snapshot.align_search_state``);
- at the sweep's end (``end_runs``), each such MLflow run still RUNNING is ended from the same
  final checkpoint as the writer ends any trial's run (scores, pictures, the model), and
  otherwise ends FAILED as lost.

Imports Ray (``ray.tune.Checkpoint``) and MLflow: the driver's side only.
"""

from __future__ import annotations

import json
import sys
from pathlib import PurePosixPath
from typing import Any

from analysis.redaction import redact
from analysis.schema import ERROR_TAG, TRIAL_ID_TAG
from analysis.trial_files import RESULT, folder_trial_id
from sweeps.config.settings import PROG, SweepSettings
from sweeps.search.study import (
    LOST_REASON,
    fail_unplaced_trials,
    one_replay,
    running_tune_trials,
    tell_unreported,
)
from sweeps.store.folder import SweepFolder


def final_checkpoints(fs: Any, experiment: str, trial_ids: set[str]) -> dict[str, tuple]:
    """``{trial id: (final result, ray.tune.Checkpoint, trial folder name)}`` of the trials in
    ``trial_ids`` whose folder in ``experiment`` (``fs`` a pyarrow filesystem) has a newest
    checkpoint holding a final result (or a trial's error); the others finished nothing."""
    import pyarrow.fs
    from ray.tune import Checkpoint

    if not trial_ids:
        return {}
    found = {}
    for entry in fs.get_file_info(pyarrow.fs.FileSelector(experiment)):
        name = PurePosixPath(entry.path).name
        trial_id = folder_trial_id(name)
        if entry.type != pyarrow.fs.FileType.Directory or trial_id not in trial_ids:
            continue
        checkpoints = sorted(
            c.path
            for c in fs.get_file_info(pyarrow.fs.FileSelector(entry.path))
            if c.type == pyarrow.fs.FileType.Directory
            and PurePosixPath(c.path).name.startswith("checkpoint_")
        )
        if not checkpoints:
            continue
        try:
            with fs.open_input_stream(f"{checkpoints[-1]}/{RESULT}") as stream:
                result = json.loads(stream.read())
        except (OSError, ValueError):  # not a final checkpoint (it has no result), or torn
            continue
        if result.get("final") or result.get("error"):
            checkpoint = Checkpoint(checkpoints[-1], filesystem=fs)
            found[trial_id] = (result, checkpoint, name)
    return found


def tell_finished(settings: SweepSettings, folder: SweepFolder, finished: dict[str, dict]):
    """Tell Optuna the final results (``finished``: Tune trial id → result) of trials whose
    Optuna trials are still open (``sweeps.search.study.tell_unreported``); returns the UDR
    scorer when the sweep scores UDR, else None."""
    pareto = settings.objective == "pareto"
    keys = [settings.metric_key, "recon_nll"] if pareto else [settings.metric_key]
    udr = None
    if settings.metric == "udr":
        from sweeps.search.udr import SettingUDR

        udr = SettingUDR(folder.shown)
    tell_unreported(folder.study_location, settings.name, finished, keys, settings.recon_budget,
                    udr)  # fmt: skip
    return udr


def tell_or_fail(settings: SweepSettings, folder: SweepFolder, snapshot: dict) -> None:
    """Before a resume: end the Optuna trials of trials ``snapshot`` (the one Tune restores)
    does not hold, from their folders (see the module)."""
    from sweeps.driver.snapshot import snapshot_trial_ids

    held = snapshot_trial_ids(snapshot)
    if len(held) >= settings.num_samples:  # Tune starts no more: none can be missing
        return  # (and a finished sweep's resume reads no journal here)
    journal = folder.study_location
    with one_replay():
        unheld = {t for t in running_tune_trials(journal, settings.name) if t not in held}
        if not unheld:
            return
        finals = final_checkpoints(*folder.filesystem(), unheld)
        tell_finished(settings, folder, {t: result for t, (result, _, _) in finals.items()})
        lost = fail_unplaced_trials(journal, settings.name, held, LOST_REASON)
    print(f"{PROG}: warning: {len(unheld)} trial(s) started after Tune's last snapshot "
          f"before the driver was killed cannot resume: {len(finals)} had finished "
          f"(counted), {len(lost)} lost ({', '.join(lost) or 'none'}: others take their "
          "place)", file=sys.stderr)  # fmt: skip


def end_runs(
    settings: SweepSettings, folder: SweepFolder, parent: Any, children: list, held: set[str]
) -> list:
    """At the sweep's end: ``children`` (its MLflow runs) with each run still RUNNING whose
    trial Tune does not hold (``held``) ended from its folder, or FAILED as lost, and read
    again (see the module)."""
    from sweeps.driver.parent import run_source_tags
    from sweeps.tracking.callback import kept_result
    from sweeps.tracking.writer import MLflowWriter

    client = parent.client
    unheld = {
        r.data.tags.get(TRIAL_ID_TAG): r
        for r in children
        if r.info.status == "RUNNING" and r.data.tags.get(TRIAL_ID_TAG) not in held
    }
    if not unheld:
        return children
    finals = final_checkpoints(*folder.filesystem(), set(unheld))
    writer = None
    for trial_id, run in unheld.items():
        if trial_id not in finals:
            client.set_tag(run.info.run_id, ERROR_TAG, LOST_REASON)
            client.set_terminated(run.info.run_id, status="FAILED")
            continue
        result, checkpoint, name = finals[trial_id]
        if writer is None:
            writer = MLflowWriter(settings.tracking_uri, parent.experiment, parent.run_id,
                                  run_tags=run_source_tags(), background=False)  # fmt: skip
        record = {"op": "complete", "trial_id": trial_id, "name": name, "config": {}}
        try:
            writer.submit({**record, "result": kept_result(result)}, checkpoint=checkpoint)
        except Exception as err:  # the run stays as it was: the summary counts it unfinished
            print(f"{PROG}: warning: the run of trial {trial_id} was not ended from its "
                  f"folder ({redact(str(err))})", file=sys.stderr)  # fmt: skip
    ended = {r.info.run_id for r in unheld.values()}
    return [client.get_run(r.info.run_id) if r.info.run_id in ended else r for r in children]
