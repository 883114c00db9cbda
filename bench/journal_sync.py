"""What it costs to keep a sweep's Optuna study durable on S3 after every change.

    .venv/bin/python bench/journal_sync.py                                  # 300 trials, all
    .venv/bin/python bench/journal_sync.py --trials 1000 --strategies local mirrored

With remote sweep storage the study is an Optuna journal on the driver's machine, mirrored to
the bucket as it grows (``sweeps.store.journal``, ``sweeps.search.study.MirroredJournal``).
This replays what a sweep does to its study per trial, through Optuna's own API, against a
local S3 endpoint (moto's server on loopback, started here), under each strategy:

- ``local``: a journal file on this machine only, nothing on S3 (the time baseline; run
  first and last, the ratio is to the mean of the two);
- ``mirrored``: the sweep's code, ``open_journal(uri)``: each append written as one new
  object holding the bytes appended since the last one (one PutObject: the mirror keeps one
  filesystem, opened with ``allow_delayed_open``);
- ``whole-file``: the local file, and after each change (each journal append) the whole
  file PUT to one object with pyarrow;
- ``whole-file-per-trial``: the whole file PUT once per trial, after its ``tell`` (so the
  changes of a trial in flight are not durable).

Per trial, as the searcher and the MLflow writer do: ``study.ask()``; the space's suggestions
(capacity family: a categorical, 3 floats, 1 int); the Tune trial id and replicate as user
attrs; the MLflow run id, through a second storage over the same journal, as the MLflow
writer creates the trial's run (``StudyLink``); at the end the recon attr and the constraint,
then ``study.tell`` (``sweeps.search.searcher.tell_result``). Random sampler, seeded: every
strategy writes the same journal lines (a TPE sampler's time would add the same to each).

Printed: wall seconds and milliseconds per trial (ratio to the baseline), uploads (objects
the code wrote), bytes uploaded, the HTTP requests moto served by method, and a restore on a
fresh HOME (a new machine: a listing then HEAD + GET per object for the mirror, HEAD + GET of
the one object for the whole file); then bytes uploaded and uploads at every ``--every``
trials (100), where whole-file upload grows as the square of the trials. Loopback has no
network latency: real S3 adds ~10-50 ms per request, so the request counts are the figures
that transfer.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STRATEGIES = ("local", "mirrored", "whole-file", "whole-file-per-trial")
BUCKET = "bench"
STUDY = "betavae-sweep"
_REQUEST = re.compile(r"(?<![A-Z])(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/")  # lines may be coloured


# -- the S3 endpoint -----------------------------------------------------------------------------
class Moto:
    """moto's server on 127.0.0.1 (a free port) with an empty bucket; counts the requests it
    served from its log (one line per request)."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log_path = folder / "moto.log"
        log = self.log_path.open("w")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._read = 0
        deadline = time.time() + 60
        while True:
            try:
                request = urllib.request.Request(f"{self.url}/{BUCKET}", method="PUT")
                urllib.request.urlopen(request, timeout=2).close()  # creates the bucket
                break
            except OSError:
                if self.server.poll() is not None:
                    raise RuntimeError(f"moto exited: {self.log_path.read_text()}") from None
                if time.time() > deadline:
                    raise RuntimeError("moto did not answer within 60 s") from None
                time.sleep(0.5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def requests(self) -> Counter:
        """Requests served since the last call, by method."""
        time.sleep(0.3)  # let the server write its last lines
        with self.log_path.open("rb") as f:
            f.seek(self._read)
            text = f.read()
        text = text[: text.rfind(b"\n") + 1]
        self._read += len(text)
        return Counter(m.group(1) for m in _REQUEST.finditer(text.decode(errors="replace")))

    def stop(self) -> None:
        os.killpg(self.server.pid, signal.SIGTERM)
        self.server.wait(timeout=30)


# -- the whole-file strategies -------------------------------------------------------------------
class WholeFile:
    """PUTs the whole local journal file as one object."""

    def __init__(self, fs, key: str, local: Path) -> None:
        self.fs, self.key, self.local = fs, key, local
        self.puts = 0
        self.bytes = 0

    def put(self) -> None:
        data = self.local.read_bytes()
        with self.fs.open_output_stream(self.key) as out:
            out.write(data)
        self.puts += 1
        self.bytes += len(data)


def whole_file_backend(local: Path, upload: WholeFile | None):
    """Optuna's journal file backend; with ``upload``, the whole file PUT after each append."""
    from optuna.storages.journal import BaseJournalBackend, JournalFileBackend

    class Backend(BaseJournalBackend):
        def __init__(self) -> None:
            self._file = JournalFileBackend(str(local))

        def read_logs(self, log_number_from):
            return self._file.read_logs(log_number_from)

        def append_logs(self, logs):
            self._file.append_logs(logs)
            if upload is not None:
                upload.put()

    return Backend()


# -- one sweep's study -------------------------------------------------------------------------
class Counting:
    """Counts the journal appends of a backend (each is a change made durable)."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.appends = 0
        original = backend.append_logs

        def append_logs(logs):
            self.appends += 1
            original(logs)

        backend.append_logs = append_logs


def play(storage, link_storage, trials: int, on_trial) -> None:
    """``trials`` trials of a sweep on ``storage`` (the searcher's) and ``link_storage`` (the
    MLflow writer's StudyLink, over the same journal); ``on_trial(n)`` after each."""
    import random

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(0)
    study = optuna.create_study(
        study_name=STUDY,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=0),
        directions=["maximize"],
        load_if_exists=True,
    )
    study_id = None
    for n in range(trials):
        trial = study.ask()
        # sweeps.search.space.SearchSpace, capacity family
        trial.suggest_categorical("objective", ["capacity"])
        trial.suggest_float("capacity_max", 0.0, 100.0)
        trial.suggest_float("anneal_fraction", 0.1, 1.0)
        trial.suggest_float("gamma", 10.0, 1000.0, log=True)
        trial.suggest_int("latent_dim", 4, 32)
        trial.set_user_attr("replicate", 0)
        trial.set_user_attr("tune_trial_id", f"{rng.getrandbits(32):08x}_{n:05d}")
        # the trial's MLflow run, created as it starts (sweeps.search.study.StudyLink)
        if study_id is None:
            study_id = link_storage.get_study_id_from_name(STUDY)
        trial_id = link_storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        link_storage.set_trial_user_attr(trial_id, "mlflow_run_id", f"{rng.getrandbits(128):032x}")
        # its end (sweeps.search.searcher.tell_result)
        recon = rng.uniform(60.0, 200.0)
        trial.set_user_attr("recon_nll", recon)
        trial.set_constraint("recon_nll_over_budget", recon - 130.0)
        study.tell(trial, [rng.random()])
        on_trial(n + 1)


def run(strategy: str, trials: int, moto: Moto, home: Path, every: int) -> dict:
    import pyarrow.fs
    from optuna.storages import JournalStorage

    from sweeps.search.study import MirroredJournal, open_journal
    from sweeps.store.journal import JournalMirror, local_journal, mirror_for

    prefix = f"{strategy}-{trials}-{time.time_ns()}"
    uri = f"s3://{BUCKET}/{prefix}/optuna.journal.d?endpoint_override={moto.endpoint}&scheme=http"
    fs = pyarrow.fs.S3FileSystem(
        endpoint_override=moto.endpoint, scheme="http", access_key="test", secret_key="test"
    )
    out: dict = {"strategy": strategy, "trials": trials, "curve": []}
    uploads = None
    mirror = None
    moto.requests()  # start counting here

    if strategy == "mirrored":
        storage = open_journal(uri)
        link_storage = open_journal(uri)
        mirror = mirror_for(uri)
        local = mirror.local
        sync = mirror.sync
        sent = {"puts": 0, "bytes": 0}

        def counted_sync() -> int:
            n = sync()
            if n:
                sent["puts"] += 1
                sent["bytes"] += n
            return n

        mirror.sync = counted_sync  # MirroredJournal calls its mirror's sync after each append
        backends = [storage._backend, link_storage._backend]
        assert all(isinstance(b, MirroredJournal) for b in backends)

        def uploaded() -> tuple[int, int]:
            return sent["puts"], sent["bytes"]
    else:
        local = home / prefix / "optuna.journal"
        local.parent.mkdir(parents=True)
        if strategy != "local":
            uploads = WholeFile(fs, f"{BUCKET}/{prefix}/optuna.journal", local)
        per_change = uploads if strategy == "whole-file" else None
        storage = JournalStorage(whole_file_backend(local, per_change))
        link_storage = JournalStorage(whole_file_backend(local, per_change))

        def uploaded() -> tuple[int, int]:
            return (uploads.puts, uploads.bytes) if uploads else (0, 0)

    counters = [Counting(storage._backend), Counting(link_storage._backend)]
    start = time.perf_counter()

    def on_trial(n: int) -> None:
        if strategy == "whole-file-per-trial":
            uploads.put()
        if n % every == 0 or n == trials:
            puts, sent_bytes = uploaded()
            out["curve"].append((n, time.perf_counter() - start, puts, sent_bytes))

    play(storage, link_storage, trials, on_trial)
    out["seconds"] = time.perf_counter() - start
    out["requests"] = moto.requests()
    out["puts"], out["bytes"] = uploaded()
    out["appends"] = sum(c.appends for c in counters)
    out["journal_bytes"] = local.stat().st_size
    journal = local.read_bytes()

    # a new machine rebuilding the journal
    if strategy.startswith("mirrored"):
        fresh = Path(tempfile.mkdtemp(prefix="home-", dir=home))
        os.environ["HOME"] = str(fresh)
        try:
            rebuilt = JournalMirror(uri)  # not mirror_for: this process's mirror has a copy
            assert rebuilt.local == local_journal(uri) and not rebuilt.local.exists()
            t = time.perf_counter()
            assert rebuilt.restore()
            out["restore_seconds"] = time.perf_counter() - t
            out["restore_requests"] = moto.requests()
            out["objects"] = len(rebuilt._objects())
            moto.requests()
            assert rebuilt.local.read_bytes() == journal, "restored journal differs"
        finally:
            os.environ["HOME"] = str(home)
    elif uploads is not None:
        t = time.perf_counter()
        with fs.open_input_stream(uploads.key) as f:
            data = f.read()
        out["restore_seconds"] = time.perf_counter() - t
        out["restore_requests"] = moto.requests()
        out["objects"] = 1
        assert data == journal, "uploaded journal differs"
    return out


# -- the report ----------------------------------------------------------------------------------
def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


def _requests(counter: Counter) -> str:
    return " ".join(f"{k} {v:,}" for k, v in sorted(counter.items())) or "0"


def report(results: list[dict], trials: int) -> None:
    locals_ = [r for r in results if r["strategy"] == "local"]
    base = sum(r["seconds"] for r in locals_) / len(locals_)
    runs = " and ".join(f"{r['seconds']:.2f} s" for r in locals_)
    print(
        f"\nbaseline (local journal only): {runs} -> {base:.2f} s, "
        f"{1000 * base / trials:.2f} ms/trial"
    )
    first = results[0]
    print(
        f"journal: {first['journal_bytes']:,} bytes for {trials} trials = "
        f"{first['journal_bytes'] / trials:,.0f} bytes/trial; "
        f"{first['appends']:,} appends = {first['appends'] / trials:.1f} changes/trial\n"
    )
    print(
        "| strategy | wall s | ms/trial | ratio | uploads/trial | uploaded | HTTP requests "
        "| requests/trial | restore s | restore requests | objects |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---|---:|")
    shown = [r for r in results if r["strategy"] != "local"]
    for r in [{**locals_[0], "seconds": base}, *shown]:
        restore = r.get("restore_seconds")
        print(
            f"| {r['strategy']} | {r['seconds']:.2f} | {1000 * r['seconds'] / trials:.1f} "
            f"| {r['seconds'] / base:.1f}× | {r['puts'] / trials:.1f} | {_mb(r['bytes'])} "
            f"| {_requests(r['requests'])} | {sum(r['requests'].values()) / trials:.1f} "
            f"| {'' if restore is None else f'{restore:.2f}'} "
            f"| {_requests(r.get('restore_requests', Counter()))} | {r.get('objects', '')} |"
        )
    print("\nby trials: bytes uploaded (objects written), ms/trial since the previous row")
    names = [r["strategy"] for r in shown]
    print("| trials | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    rows = zip(*(r["curve"] for r in shown), strict=True)
    previous = {name: (0, 0.0) for name in names}
    for points in rows:
        cells = []
        for name, (n, elapsed, puts, sent) in zip(names, points, strict=True):
            n0, t0 = previous[name]
            previous[name] = (n, elapsed)
            ms = 1000 * (elapsed - t0) / (n - n0)
            cells.append(f"{_mb(sent)} ({puts:,}), {ms:.1f} ms")
        print(f"| {points[0][0]} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--every", type=int, default=100, help="trials between curve points")
    args = parser.parse_args()

    os.environ.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    with tempfile.TemporaryDirectory(prefix="journal-sync-") as folder:
        home = Path(folder) / "home"
        home.mkdir()
        os.environ["HOME"] = str(home)
        moto = Moto(Path(folder))
        try:
            import pyarrow.fs

            warm = pyarrow.fs.S3FileSystem(
                endpoint_override=moto.endpoint, scheme="http", access_key="test",
                secret_key="test",
            )  # fmt: skip
            warm.get_file_info(pyarrow.fs.FileSelector(BUCKET, allow_not_found=True))
            order = ["local", *[s for s in args.strategies if s != "local"], "local"]
            results = []
            for strategy in order:
                result = run(strategy, args.trials, moto, home, args.every)
                print(
                    f"{strategy}: {result['seconds']:.2f} s, {result['puts']:,} uploads, "
                    f"{_mb(result['bytes'])}, requests {_requests(result['requests'])}",
                    flush=True,
                )
                results.append(result)
        finally:
            moto.stop()
    print(f"\n{os.cpu_count()} cores; moto {_version('moto')} on loopback; {args.trials} trials")
    report(results, args.trials)


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
