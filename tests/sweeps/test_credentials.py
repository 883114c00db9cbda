"""Storage keys for the driver's life (``sweeps.driver.credentials``): in a private file the
environment names, never in the environment Ray Tune copies into trials' ``runtime_env``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sweeps.driver.credentials import KEYS, keys_in_a_private_file


def test_keys_move_into_a_private_file_for_the_block_and_back_after(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-ENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    from_uri = {"AWS_ACCESS_KEY_ID": "AKIA-URI", "AWS_SECRET_ACCESS_KEY": "uri-secret"}
    with keys_in_a_private_file(from_uri):
        assert not any(k in os.environ for k in KEYS)  # nothing for Tune to copy
        assert not {"uri-secret", "env-secret"} & set(os.environ.values())
        path = os.environ["AWS_SHARED_CREDENTIALS_FILE"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        text = Path(path).read_text()
        assert "uri-secret" in text and "env-secret" not in text  # the URI's keys win
        assert f"[{os.environ['AWS_PROFILE']}]" in text
    assert not os.path.exists(path)
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "env-secret" and "AWS_PROFILE" not in os.environ


def test_without_keys_nothing_changes(monkeypatch):
    for key in (*KEYS, "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    before = dict(os.environ)
    with keys_in_a_private_file({}):
        assert dict(os.environ) == before


def test_a_killed_drivers_credentials_file_is_deleted_by_the_next_driver(tmp_path, monkeypatch):
    """``kill -9`` skips the clean-up: the next driver on the machine deletes the folder of a
    driver that is gone, and leaves a live driver's alone."""
    import subprocess
    import sys

    from sweeps.driver import credentials

    monkeypatch.setattr(credentials, "private_root", lambda: tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f"{credentials.PREFIX}{gone.pid}-abc"
    alive = tmp_path / f"{credentials.PREFIX}{os.getppid()}-def"
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "credentials").write_text("[betavae-sweep]\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-ENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    with keys_in_a_private_file({}):
        assert not dead.exists() and alive.exists()
        own = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).parent
        assert own.parent == tmp_path and own.name.startswith(f"{credentials.PREFIX}{os.getpid()}-")
    assert not own.exists() and alive.exists()
