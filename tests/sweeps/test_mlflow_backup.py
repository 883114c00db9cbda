"""The sqlite MLflow store's copy in the sweep's folder (``sweeps.tracking.backup``)."""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.tracking.backup import (
    CHUNKS,
    MANIFEST,
    BackupRefused,
    DatabaseBackup,
    backup_uri,
    describe,
    main,
    replaces,
    restore,
)

ROOT = Path(__file__).resolve().parents[2]


def database(path: Path, rows: int = 2, created: int = 1_000) -> Path:
    """A small sqlite file shaped like MLflow's (experiments, runs, metrics)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(
            "create table if not exists experiments "
            "(experiment_id integer primary key, creation_time bigint, last_update_time bigint)"
        )
        db.execute("create table if not exists runs (id text, start_time bigint, end_time bigint)")
        db.execute("create table if not exists metrics (run text, timestamp bigint, blob blob)")
        if not db.execute("select count(*) from experiments").fetchone()[0]:
            db.execute("insert into experiments values (0, ?, ?)", (created, created))
        add(db, rows)
    return path


def add(db: sqlite3.Connection, rows: int, start: int = 2_000) -> None:
    n = db.execute("select count(*) from runs").fetchone()[0]
    for i in range(n, n + rows):
        db.execute("insert into runs values (?, ?, null)", (f"r{i}", start + i))
        db.execute("insert into metrics values (?, ?, randomblob(3000))", (f"r{i}", start + i))


def grow(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as db:
        add(db, rows)


def runs(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("select id from runs order by rowid")]


def manifest(storage: Path, name: str) -> dict:
    return json.loads((Path(backup_uri(str(storage), name)) / MANIFEST).read_text())


def test_the_backup_lives_in_the_sweeps_folder_and_is_restored_only_where_none_is(tmp_path):
    head = database(tmp_path / "head" / "mlflow.db")
    storage = tmp_path / "bucket"
    assert DatabaseBackup(head, str(storage), "frontier").copy()
    assert backup_uri(str(storage), "frontier") == f"{storage}/frontier/_mlflow"
    assert backup_uri("s3://b/sweeps?scheme=http", "x") == "s3://b/sweeps/x/_mlflow?scheme=http"
    stored = manifest(storage, "frontier")
    assert stored["sweep"] == "frontier" and stored["database_created_ms"] == 1_000
    assert stored["watermark"]["newest_ms"] == 2_001 and stored["size"] == head.stat().st_size
    assert not (storage / "_mlflow").exists()  # nothing at the storage root any more

    new_head = tmp_path / "new-head" / "mlflow.db"
    assert restore(str(storage), "frontier", new_head)[0]
    assert runs(new_head) == ["r0", "r1"]
    grow(new_head, 1)
    done, line = restore(str(storage), "frontier", new_head)
    assert not done and "kept" in line and runs(new_head) == ["r0", "r1", "r2"]
    done, line = restore(str(tmp_path / "empty"), "frontier", tmp_path / "x.db")
    assert not done and "no backup" in line and not (tmp_path / "x.db").exists()


def test_two_sweeps_on_one_storage_root_keep_their_own_backups(tmp_path):
    storage = str(tmp_path / "bucket")
    a = database(tmp_path / "a" / "mlflow.db", rows=1, created=1)
    b = database(tmp_path / "b" / "mlflow.db", rows=3, created=2)
    DatabaseBackup(a, storage, "sweep-a").copy()
    DatabaseBackup(b, storage, "sweep-b").copy()
    DatabaseBackup(a, storage, "sweep-a").copy(final=True)  # the last upload is a's
    assert restore(storage, "sweep-b", tmp_path / "new-b.db")[0]
    assert restore(storage, "sweep-a", tmp_path / "new-a.db")[0]
    assert runs(tmp_path / "new-b.db") == ["r0", "r1", "r2"]
    assert runs(tmp_path / "new-a.db") == ["r0"]


def test_an_older_snapshot_never_replaces_a_newer_one(tmp_path):
    storage = str(tmp_path / "bucket")
    first = database(tmp_path / "first" / "mlflow.db", rows=2)
    DatabaseBackup(first, storage, "s").copy()
    # A second head restores that copy; the first goes on and backs up more.
    second = tmp_path / "second" / "mlflow.db"
    restore(storage, "s", second)
    grow(first, 3)
    assert DatabaseBackup(first, storage, "s").copy()
    newer = manifest(tmp_path / "bucket", "s")
    # The second head, behind, copies: the stored backup is newer, so nothing is written.
    assert not DatabaseBackup(second, storage, "s").copy()
    assert manifest(tmp_path / "bucket", "s") == newer
    grow(second, 1)  # still behind (3 runs against 5)
    assert not DatabaseBackup(second, storage, "s").copy(final=True)
    assert manifest(tmp_path / "bucket", "s") == newer
    # Another database (a new store for the sweep) replaces it; so does one further ahead.
    other = database(tmp_path / "other" / "mlflow.db", rows=1, created=7)
    assert DatabaseBackup(other, storage, "s").copy()
    grow(first, 1)
    assert DatabaseBackup(first, storage, "s").copy()
    assert restore(storage, "s", tmp_path / "r.db")[0]
    assert runs(tmp_path / "r.db") == [f"r{i}" for i in range(6)]


def test_the_rule_for_replacing_a_stored_copy():
    ours = {"sweep": "s", "database_created_ms": 1, "watermark": {"rows": 5, "newest_ms": 9}}
    ours["chunks"] = ["a"]
    assert replaces(ours, None)
    assert replaces(ours, {**ours, "sweep": "t"})  # another sweep's (a copied folder)
    assert replaces(ours, {**ours, "database_created_ms": 2})  # another database
    assert replaces(ours, {**ours, "watermark": {"rows": 4, "newest_ms": 99}})  # fewer rows
    assert replaces(ours, {**ours, "watermark": {"rows": 5, "newest_ms": 8}})
    assert not replaces(ours, {**ours, "watermark": {"rows": 6, "newest_ms": 1}})
    assert not replaces(ours, ours)  # nothing new
    assert replaces(ours, {**ours, "chunks": ["b"]})  # as new, other bytes (a run's end)
    assert replaces(ours, {**ours, "watermark": "damaged"})


def test_describe_reads_mlflows_own_schema(tmp_path):
    """The watermark and the database's identity on a store MLflow 3 created itself."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    path = tmp_path / "mlflow.db"
    client = MlflowClient(f"sqlite:///{path}")
    experiment = client.create_experiment("s")
    run = client.create_run(experiment).info.run_id
    before = describe(path)
    assert before["database_created_ms"] == client.get_experiment("0").creation_time
    client.log_batch(run, metrics=[Metric("m", 1.0, 1, 0)])
    logged = describe(path)
    assert logged["watermark"]["rows"] > before["watermark"]["rows"]
    client.set_terminated(run)
    ended = describe(path)["watermark"]
    assert ended["rows"] == logged["watermark"]["rows"]
    assert (
        ended["newest_ms"] == client.get_run(run).info.end_time >= logged["watermark"]["newest_ms"]
    )
    assert describe(path)["database_created_ms"] == before["database_created_ms"]


def test_a_backup_of_another_sweep_is_refused_in_one_line(tmp_path, capsys):
    storage = tmp_path / "bucket"
    DatabaseBackup(database(tmp_path / "h" / "mlflow.db"), str(storage), "old-name").copy()
    (storage / "old-name").rename(storage / "new-name")  # a renamed folder
    target = tmp_path / "new" / "mlflow.db"
    with pytest.raises(BackupRefused, match="sweep 'old-name', not 'new-name'"):
        restore(str(storage), "new-name", target)
    assert not target.exists() and not list(target.parent.glob("*"))
    assert main(["restore", str(storage), "new-name", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--adopt" in err and not target.exists()
    assert main(["restore", str(storage), "new-name", str(target), "--adopt"]) == 0
    assert runs(target) == ["r0", "r1"]


@pytest.mark.parametrize("damage", ["flipped", "missing", "manifest"])
def test_a_damaged_backup_is_refused_and_leaves_nothing(tmp_path, damage):
    storage = tmp_path / "bucket"
    DatabaseBackup(
        database(tmp_path / "h" / "mlflow.db"), str(storage), "s", chunk_size=4096
    ).copy()
    folder = Path(backup_uri(str(storage), "s"))
    chunk = folder / CHUNKS / manifest(storage, "s")["chunks"][1]
    if damage == "flipped":
        data = bytearray(chunk.read_bytes())
        data[100] ^= 1
        chunk.write_bytes(bytes(data))
    elif damage == "missing":
        chunk.unlink()
    else:
        (folder / MANIFEST).write_text('{"sweep": "s", "chunks": [')
    target = tmp_path / "new" / "mlflow.db"
    with pytest.raises(BackupRefused, match={"flipped": "damaged", "missing": "missing",
                                             "manifest": "damaged"}[damage]):  # fmt: skip
        restore(str(storage), "s", target)
    assert not target.exists() and not list(target.parent.glob("*"))  # no partial file


def test_chunks_upload_what_changed_and_the_interval_skips_copies(tmp_path):
    storage = tmp_path / "bucket"
    head = database(tmp_path / "h" / "mlflow.db", rows=40)
    now = [0.0]
    backup = DatabaseBackup(head, str(storage), "s", chunk_size=4096, interval_s=300,
                            clock=lambda: now[0])  # fmt: skip
    chunks = Path(backup_uri(str(storage), "s")) / CHUNKS

    def written() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in chunks.iterdir()}

    assert backup.copy()
    first = written()
    assert len(first) == len(manifest(storage, "s")["chunks"]) > 10
    grow(head, 1)
    now[0] = 100.0
    assert not backup.copy()  # within the interval: skipped
    assert written() == first
    now[0] = 301.0
    assert backup.copy()
    second = written()
    uploaded = {k for k, t in second.items() if first.get(k) != t}
    assert 0 < len(uploaded) < len(first) / 2  # only the chunks that changed
    assert set(second) == set(manifest(storage, "s")["chunks"])  # replaced chunks deleted
    grow(head, 1)
    now[0] = 302.0
    assert backup.copy(final=True)  # the sweep's end: whatever the interval
    assert restore(str(storage), "s", tmp_path / "r.db")[0] and runs(tmp_path / "r.db")[-1] == "r41"
    # An orphan chunk (a driver stopped before its manifest) goes with the next process's copy.
    (chunks / ("0" * 64)).write_bytes(b"x")
    grow(head, 1)
    assert DatabaseBackup(head, str(storage), "s", chunk_size=4096).copy()
    assert ("0" * 64) not in written()
    assert pickle.loads(pickle.dumps(backup)).target == backup.target  # Tune pickles it


def test_the_storage_roots_old_single_backup_is_only_adopted_on_request(tmp_path):
    storage = tmp_path / "bucket"
    legacy = database(storage / "_mlflow" / "mlflow.db", rows=1)
    target = tmp_path / "new" / "mlflow.db"
    done, line = restore(str(storage), "s", target)
    assert not done and "--adopt" in line and str(legacy) in line and not target.exists()
    done, line = restore(str(storage), "s", target, adopt=True)
    assert done and runs(target) == ["r0"]


def test_the_restore_command(tmp_path):
    storage = tmp_path / "bucket"
    DatabaseBackup(database(tmp_path / "h" / "mlflow.db"), str(storage), "s").copy()
    target = tmp_path / "new" / "mlflow.db"

    def command(*args: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "sweeps.tracking.backup", "restore", *args]
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)

    done = command(str(storage), "s", str(target))
    assert done.returncode == 0 and "restored" in done.stdout and runs(target) == ["r0", "r1"]
    kept = command(str(storage), "s", str(target))
    assert kept.returncode == 0 and "kept" in kept.stdout
    unnamed = command(str(storage), "", str(tmp_path / "x.db"))  # an unset variable
    assert unnamed.returncode == 2 and unnamed.stderr.count("\n") == 1
    other = command(str(storage), "t", str(tmp_path / "x.db"))
    assert other.returncode == 0 and "no backup of sweep 't'" in other.stdout
