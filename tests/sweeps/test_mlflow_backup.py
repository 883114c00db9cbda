"""The sqlite MLflow store's copy in the sweep's storage (``sweeps.tracking.backup``)."""

from __future__ import annotations

import sqlite3

from sweeps.tracking.backup import DatabaseBackup, backup_uri, restore


def test_a_backup_is_restored_where_the_database_is_missing_and_never_over_one(tmp_path):
    database = tmp_path / "head" / "mlflow.db"
    database.parent.mkdir()
    with sqlite3.connect(database) as db:
        db.execute("create table runs (id text)")
        db.execute("insert into runs values ('a'), ('b')")
    storage = str(tmp_path / "bucket")
    DatabaseBackup(database, storage).copy()
    assert backup_uri(storage) == f"{storage}/_mlflow/mlflow.db"

    new_head = tmp_path / "new-head" / "mlflow.db"
    assert restore(storage, new_head)
    with sqlite3.connect(new_head) as db:
        assert db.execute("select id from runs order by id").fetchall() == [("a",), ("b",)]
        db.execute("insert into runs values ('c')")
    assert not restore(storage, new_head)  # an existing database is kept as it is
    with sqlite3.connect(new_head) as db:
        assert len(db.execute("select id from runs").fetchall()) == 3
    assert not restore(str(tmp_path / "empty"), tmp_path / "x.db")  # no backup: nothing
