"""Settings → checked: every value a user can pass, before Ray starts.

``validate`` raises :class:`UsageError` with one line naming the flag, the value and what is
allowed (``sweeps/BAD_INPUTS.md`` lists them). Its one file read is the dataset file's header.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, NoReturn

from betavae.catalogue import DATASET_SPECS, check_dataset_spec
from sweeps.settings import SweepSettings, UsageError


def fail(message: str) -> NoReturn:
    raise UsageError(message)


def validate(s: SweepSettings) -> None:
    """Raise :class:`UsageError` naming the first setting outside what is allowed."""

    def need(ok: bool, flag: str, value: Any, allowed: str) -> None:
        if not ok:
            fail(f"{flag}: got {value!r}; allowed: {allowed}")

    need(
        bool(s.name)
        and all(c.isalnum() or c in "-_." for c in s.name)
        and not s.name.startswith(".")
        and len(s.name) <= 100,
        "--name",
        s.name,
        "up to 100 letters, digits, '-', '_' and '.', not starting with '.'",
    )
    need(s.num_samples >= 1, "--num-samples", s.num_samples, "an integer >= 1")
    need(s.replicates >= 1, "--replicates", s.replicates, "an integer >= 1")
    need(s.max_concurrent >= 1, "--max-concurrent", s.max_concurrent, "an integer >= 1")
    need(
        math.isfinite(s.cpus_per_trial) and s.cpus_per_trial >= 1,
        "--cpus-per-trial",
        s.cpus_per_trial,
        "a number >= 1 (a trial trains on at least one core)",
    )
    need(
        (math.isfinite(s.gpus_per_trial) and 0 <= s.gpus_per_trial <= 1)
        or (s.gpus_per_trial > 1 and float(s.gpus_per_trial).is_integer()),
        "--gpus-per-trial",
        s.gpus_per_trial,
        "0, a fraction in (0, 1], or a whole number",
    )
    need(s.steps >= 1, "--steps", s.steps, "an integer >= 1")
    need(s.batch_size >= 1, "--batch-size", s.batch_size, "an integer >= 1")
    need(s.report_every >= 1, "--report-every", s.report_every, "an integer >= 1")
    need(
        s.max_failures >= -1,
        "--max-failures",
        s.max_failures,
        "an integer >= 0, or -1 for no limit",
    )
    need(
        s.stall_timeout is None or (math.isfinite(s.stall_timeout) and s.stall_timeout > 0),
        "--stall-timeout",
        s.stall_timeout,
        "a number of seconds > 0",
    )
    need(
        s.eval_images >= 1_000,
        "--eval-images",
        s.eval_images,
        "an integer >= 1000 (a dataset smaller than that is evaluated whole)",
    )
    need(
        s.checkpoint_every >= 1 and s.checkpoint_every % s.report_every == 0,
        "--checkpoint-every",
        s.checkpoint_every,
        f"a positive multiple of --report-every ({s.report_every})",
    )
    need(
        math.isfinite(s.recon_budget) and s.recon_budget > 0,
        "--recon-budget",
        s.recon_budget,
        "a positive number of nats",
    )
    need(s.seed >= 0, "--seed", s.seed, "an integer >= 0")
    try:
        check_dataset_spec(s.dataset)
    except ValueError:
        fail(f"--dataset: got {s.dataset!r}; allowed: one of {', '.join(DATASET_SPECS)}")
    name, _, path = s.dataset.partition(":")
    if path and not Path(path).is_file():
        fail(f"--dataset: got {s.dataset!r}; allowed: a {name} spec naming an existing file")
    need(
        s.tracking_uri.split(":", 1)[0] in _TRACKING_SCHEMES,
        "--tracking-uri",
        s.tracking_uri,
        "sqlite:///FILE, http(s)://HOST:PORT, postgresql://…, mysql://… or databricks",
    )
    if s.tracking_uri.startswith("sqlite:///"):
        db_dir = Path(s.tracking_uri.removeprefix("sqlite:///")).expanduser().parent
        need(
            db_dir.is_dir() and os.access(db_dir, os.W_OK),
            "--tracking-uri",
            s.tracking_uri,
            "a sqlite file in an existing, writable directory",
        )
    scheme = s.storage_path.split("://", 1)[0] if "://" in s.storage_path else "file"
    need(
        scheme in ("file", "s3", "gs", "abfs", "hdfs"),
        "--storage-path",
        s.storage_path,
        "a local path or an s3://, gs://, abfs:// or hdfs:// URI",
    )
    if s.storage_is_local:
        root = Path(s.storage_path.removeprefix("file://")).expanduser()
        need(
            not root.exists() or root.is_dir(),
            "--storage-path",
            s.storage_path,
            "a directory (this is a file)",
        )
        existing = _first_existing(root.absolute())
        need(
            existing.is_dir() and os.access(existing, os.W_OK),
            "--storage-path",
            s.storage_path,
            f"a folder that can be created ({existing} is not a writable directory)",
        )
    need(
        s.address is None
        or s.address in ("auto", "local")
        or _HOST_PORT.fullmatch(s.address.removeprefix("ray://")) is not None,
        "--address",
        s.address,
        "auto, local, HOST:PORT or ray://HOST:PORT",
    )
    lo, hi = s.latent_dim_range
    need(
        1 <= lo <= hi <= 1024,
        "--latent-dims",
        ",".join(map(str, s.latent_dim_range)),
        "integers LOW,HIGH with 1 <= LOW <= HIGH <= 1024",
    )
    float_ranges = (
        ("--beta-range", s.beta_range, lambda lo, hi: 0 < lo <= hi <= 1e4,
         "numbers LOW,HIGH with 0 < LOW <= HIGH <= 10000"),
        ("--capacity-max-range", s.capacity_max_range, lambda lo, hi: 0 <= lo <= hi <= 1000,
         "numbers LOW,HIGH of nats with 0 <= LOW <= HIGH <= 1000"),
        ("--anneal-fraction-range", s.anneal_fraction_range, lambda lo, hi: 0 < lo <= hi <= 1,
         "numbers LOW,HIGH with 0 < LOW <= HIGH <= 1"),
        ("--gamma-range", s.gamma_range, lambda lo, hi: 0 < lo <= hi <= 1e5,
         "numbers LOW,HIGH with 0 < LOW <= HIGH <= 100000"),
    )  # fmt: skip
    for name, (lo, hi), within, allowed in float_ranges:
        ok = math.isfinite(lo) and math.isfinite(hi) and within(lo, hi)
        need(ok, name, f"{lo},{hi}", allowed)
    need(
        math.isfinite(s.lr) and 0 < s.lr <= 1,
        "--learning-rate",
        s.lr,
        "a number in (0, 1]",
    )
    need(
        s.num_gpus is None or (math.isfinite(s.num_gpus) and s.num_gpus >= 0),
        "--num-gpus",
        s.num_gpus,
        "a number >= 0",
    )

    # Last: the only check that reads a file (headers and labels, no images). Only a spec
    # naming a file needs the dataset code (and its torch import).
    if path:
        from betavae.data import DatasetFileError, check_dataset_file

        try:
            check_dataset_file(s.dataset)
        except DatasetFileError as err:
            fail(f"--dataset: {err}")


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


_HOST_PORT = re.compile(r"[A-Za-z0-9.\-]+:[0-9]{1,5}|\[[0-9A-Fa-f:]+\]:[0-9]{1,5}")
_TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
