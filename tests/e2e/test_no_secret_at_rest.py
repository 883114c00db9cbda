"""A planted secret in the tracking URI (``http://user:SECRET@…`` to a real ``mlflow server``)
and another in the storage URI (``s3://KEY:SECRET@…``, no keys in the environment) is found in
no byte the sweep wrote: the bucket (Tune's pickles and the journal's objects included), the
MLflow server's database and artifacts, this machine's copy of the journal, the local report,
Ray's session logs, and what the driver printed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sweep_support import BUCKET, free_port, run_sweep, smoke_argv, start_server, stop, sweep_env

pytestmark = pytest.mark.slow
TRACKING_SECRET, STORAGE_SECRET = "trackpw9x7", "storagepw4k2"
NAME = "secrets"


def files_under(root: Path, since: float = 0.0) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_mtime >= since]


def test_no_secret_is_written_anywhere(tmp_path, s3_endpoint):
    import pyarrow.fs

    started = time.time()
    port = free_port()
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    server = start_server(server_dir, port)
    try:
        tracking = f"http://user:{TRACKING_SECRET}@127.0.0.1:{port}"
        storage = (
            f"s3://test:{STORAGE_SECRET}@{BUCKET}/{NAME}?endpoint_override={s3_endpoint}"
            "&scheme=http"
        )
        env = {k: v for k, v in sweep_env(HOME=str(tmp_path / "home")).items() if "AWS" not in k}
        argv = smoke_argv(tmp_path, NAME, "--num-samples", "2", "--storage-path", storage,
                          "--tracking-uri", tracking, "--address", "local")  # fmt: skip
        done = run_sweep(argv, tmp_path, env)
    finally:
        stop(server)
    assert done.returncode == 0, done.stderr[-4000:]
    secrets = (TRACKING_SECRET.encode(), STORAGE_SECRET.encode())

    found = []
    output = (done.stdout + done.stderr).encode()
    found += ["stdout/stderr" for s in secrets if s in output]
    fs = pyarrow.fs.S3FileSystem(
        endpoint_override=s3_endpoint, scheme="http", access_key="test", secret_key="test"
    )
    objects = [
        info.path
        for info in fs.get_file_info(pyarrow.fs.FileSelector(f"{BUCKET}/{NAME}", recursive=True))
        if info.is_file
    ]
    assert any(o.endswith("tuner.pkl") for o in objects) and any("journal.d/" in o for o in objects)
    for path in objects:
        with fs.open_input_stream(path) as f:
            data = f.read()
        found += [path for s in secrets if s in data]
    local = [
        *files_under(server_dir),  # the MLflow server's database and artifacts
        *files_under(tmp_path / "home"),  # this machine's journal copy, spools
        *files_under(tmp_path / "reports"),
        *files_under(Path("/tmp/ray"), since=started),  # Ray's session logs of this sweep
    ]
    assert any(p.name == "server.db" for p in local)
    assert any("/tmp/ray/" in str(p) and p.suffix in (".log", ".out", ".err") for p in local)
    for path in local:
        try:
            data = path.read_bytes()
        except OSError:  # a socket or a file Ray removed meanwhile
            continue
        found += [str(path) for s in secrets if s in data]
    assert found == []
