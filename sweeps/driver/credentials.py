"""Storage keys for the driver and a local Ray's workers, kept out of Ray's runtime env.

Ray Tune copies the driver's ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``
into every trial's ``runtime_env``, and Ray's runtime-env agent writes that into its log
(``/tmp/ray/session_*/logs/runtime_env_agent.log``); its job API returns it too. So for the
driver's life the keys (from ``--storage-path``, else from this environment) move into an AWS
shared-credentials file of its own, readable by this user only and kept in memory-backed
``/dev/shm`` where there is one; the environment names the file and a profile and holds no key.
The folder goes when the driver ends; one a killed driver left is deleted by the next driver
on the machine.
pyarrow, boto3 and a local Ray's workers (which inherit the environment) read them from there.
A cluster's nodes use their own credentials (an IAM role, an instance profile, IRSA): keys
given here reach this driver only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
PROFILE = "betavae-sweep"
_FILE_KEYS = {
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_SECURITY_TOKEN": "aws_security_token",
}


#: A driver's credentials folder: ``betavae-aws-<pid>-<random>``.
PREFIX = "betavae-aws-"


def private_root() -> Path:
    """Where the credentials folders go: memory-backed ``/dev/shm`` where there is one."""
    memory = Path("/dev/shm")
    return memory if memory.is_dir() else Path(tempfile.gettempdir())


def remove_dead_drivers_files(root: Path) -> list[Path]:
    """Delete the credentials folders in ``root`` of drivers no longer alive (a ``kill -9``
    leaves its folder behind); returns them. A folder whose process is alive, or not this
    user's, is left alone."""
    removed = []
    for folder in root.glob(f"{PREFIX}*-*"):
        try:
            pid = int(folder.name[len(PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if folder.stat().st_uid != os.getuid() or _alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def keys_in_a_private_file(from_uri: dict[str, str]) -> Iterator[None]:
    """For the ``with`` block: the keys of ``from_uri`` (``SweepFolder.credentials``), else the
    environment's, in a private credentials file named by ``AWS_SHARED_CREDENTIALS_FILE`` and
    ``AWS_PROFILE``; the environment's own keys are set aside and restored after."""
    keys = dict(from_uri) or {k: os.environ[k] for k in KEYS if os.environ.get(k)}
    if not keys.get("AWS_ACCESS_KEY_ID") or not keys.get("AWS_SECRET_ACCESS_KEY"):
        yield
        return
    root = private_root()
    remove_dead_drivers_files(root)
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root))
    saved = {k: os.environ.get(k) for k in (*KEYS, "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE")}
    try:
        path = folder / "credentials"
        lines = [f"[{PROFILE}]", *(f"{_FILE_KEYS[k]} = {v}" for k, v in keys.items())]
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as f:
            f.write("\n".join(lines) + "\n")
        for key in KEYS:
            os.environ.pop(key, None)
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(path)
        os.environ["AWS_PROFILE"] = PROFILE
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(folder, ignore_errors=True)
