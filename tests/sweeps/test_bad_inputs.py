"""The catalogue of bad inputs: each is refused with one line naming the problem and what is
allowed, exit code 2, before Ray starts, with nothing written.

The table in ``sweeps/BAD_INPUTS.md`` is this catalogue with the lines the script really
prints; ``python tests/sweeps/test_bad_inputs.py > sweeps/BAD_INPUTS.md`` regenerates it, and
:func:`test_the_documented_table_is_the_catalogue` fails when it is stale.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script to regenerate the table
    sys.path.insert(0, str(REPO))

from sweeps.beta_frontier import main  # noqa: E402

TABLE = REPO / "sweeps" / "BAD_INPUTS.md"


@dataclass(frozen=True)
class Case:
    what: str
    """The bad input, in words (the table's first column)."""
    argv: tuple[str, ...]
    """Flags; ``{dir}`` stands for the working folder the case runs in."""
    expect: str
    """A fragment the one-line answer must contain."""
    setup: Callable[[Path], None] | None = None
    """Writes the files the case needs into the working folder."""


# -- files the cases need --------------------------------------------------------------------
def _latents() -> dict[str, np.ndarray]:
    from betavae.data.dsprites_npz import all_classes, classes_to_values

    classes = all_classes()
    return {"latents_classes": classes, "latents_values": classes_to_values(classes)}


def npz(name: str, **arrays: np.ndarray | None) -> Callable[[Path], None]:
    """A dSprites-like npz: the real factor arrays, a few images, ``arrays`` replacing or
    (given as None) dropping keys."""

    def write(folder: Path) -> None:
        content = {"imgs": np.zeros((4, 64, 64), np.uint8), **_latents(), **arrays}
        np.savez(folder / name, **{k: v for k, v in content.items() if v is not None})

    return write


def truncated_npz(folder: Path) -> None:
    npz("full.npz")(folder)
    data = (folder / "full.npz").read_bytes()
    (folder / "cut.npz").write_bytes(data[: len(data) // 2])
    (folder / "full.npz").unlink()


def text(name: str, content: str | bytes) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return write


def h5(name: str, images_shape: tuple[int, ...]) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        import h5py

        with h5py.File(folder / name, "w") as f:
            f["images"] = np.zeros(images_shape, np.uint8)
            f["labels"] = np.zeros((images_shape[0], 6))

    return write


def image_folder(name: str) -> Callable[[Path], None]:
    """A folder of a few greyscale PNGs, the user's own images (no factors)."""

    def write(folder: Path) -> None:
        from PIL import Image

        (folder / name).mkdir()
        for i in range(4):
            Image.fromarray(np.full((64, 64), 60 * i, np.uint8)).save(folder / name / f"{i}.png")

    return write


def bad_image_folder(name: str, kind: str) -> Callable[[Path], None]:
    """A folder of the user's images with one defect: ``empty``, ``corrupt`` (a PNG that does
    not decode beside good ones), ``mixed`` (greyscale and colour), ``too small``."""

    def write(folder: Path) -> None:
        from PIL import Image

        images = folder / name
        images.mkdir()
        if kind == "empty":
            return
        for i in range(4):
            Image.fromarray(np.full((64, 64), 60 * i, np.uint8)).save(images / f"{i}.png")
        if kind == "corrupt":
            (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        elif kind == "mixed":
            Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(images / "colour.png")
        elif kind == "too small":
            Image.fromarray(np.zeros((32, 80), np.uint8)).save(images / "thumb.png")

    return write


def existing_sweep(*argv: str) -> Callable[[Path], None]:
    """The ``sweep.json`` a sweep started with ``argv`` leaves in ``{dir}/rr/NAME``."""

    def write(folder: Path) -> None:
        from sweeps.config import parse_settings

        settings = parse_settings([*argv, "--storage-path", str(folder / "rr")])
        sweep = folder / "rr" / settings.name
        sweep.mkdir(parents=True)
        (sweep / "sweep.json").write_text(json.dumps({"search": settings.search_settings()}))

    return write


S = "--storage-path"
CASES = [
    # -- the search space -------------------------------------------------------------------
    Case("negative β", ("--beta-range", "-1,8"), "--beta-range: got '-1.0,8.0'"),
    Case("β range upside down", ("--beta-range", "8,2"), "--beta-range: got '8.0,2.0'"),
    Case("β range not numbers", ("--beta-range", "a,b"), "not LOW,HIGH numbers: 'a,b'"),
    Case("zero latents", ("--latent-dims", "0,4"), "--latent-dims: got '0,4'"),
    Case("fractional latent size", ("--latent-dims", "4.5,8"), "not LOW,HIGH integers"),
    Case("latent range of one number", ("--latent-dims", "8"), "not LOW,HIGH integers: '8'"),
    Case("unknown family", ("--families", "beta,vq"), "not a list of distinct families"),
    Case("a family twice", ("--families", "beta,beta"), "not a list of distinct families"),
    Case(
        "negative C_max",
        ("--capacity-max-range", "-5,20"),
        "--capacity-max-range: got '-5.0,20.0'",
    ),
    Case(
        "anneal beyond training",
        ("--anneal-fraction-range", "0.5,1.5"),
        "--anneal-fraction-range: got '0.5,1.5'",
    ),
    Case("zero γ", ("--gamma-range", "0,100"), "--gamma-range: got '0.0,100.0'"),
    Case("unknown metric", ("--metric", "elbo"), "invalid choice: 'elbo'"),
    Case("unknown objective", ("--objective", "best"), "invalid choice: 'best'"),
    Case("unknown preset", ("--preset", "huge"), "invalid choice: 'huge'"),
    Case("budget not a number", ("--recon-budget", "abc"), "not a number: 'abc'"),
    Case("negative budget", ("--recon-budget", "-5"), "--recon-budget: got -5.0"),
    Case("budget NaN", ("--recon-budget", "nan"), "--recon-budget: got nan"),
    Case("infinite budget", ("--recon-budget", "inf"), "--recon-budget: got inf"),
    # -- scale and resources ----------------------------------------------------------------
    Case("no trials", ("--num-samples", "0"), "--num-samples: got 0"),
    Case("trials not an integer", ("--num-samples", "many"), "not an integer: 'many'"),
    Case("no seed replicates", ("--replicates", "0"), "--replicates: got 0"),
    Case("negative concurrency", ("--max-concurrent", "-1"), "--max-concurrent: got -1"),
    Case("half a CPU per trial", ("--cpus-per-trial", "0.5"), "--cpus-per-trial: got 0.5"),
    Case(
        "more CPUs per trial than this machine has (local Ray)",
        ("--cpus-per-trial", "4096", S, "{dir}/rr"),
        "--cpus-per-trial: got 4096.0; allowed: at most",
    ),
    Case("1.5 GPUs per trial", ("--gpus-per-trial", "1.5"), "--gpus-per-trial: got 1.5"),
    Case("negative GPUs per trial", ("--gpus-per-trial", "-0.25"), "got -0.25"),
    Case(
        "more GPUs per trial than the local Ray has",
        ("--num-gpus", "1", "--gpus-per-trial", "2", S, "{dir}/rr"),
        "--gpus-per-trial: got 2.0; allowed: at most 1, the GPUs",
    ),
    Case("negative logical GPUs", ("--num-gpus", "-1"), "--num-gpus: got -1.0"),
    Case("zero steps", ("--steps", "0"), "--steps: got 0"),
    Case("zero batch size", ("--batch-size", "0"), "--batch-size: got 0"),
    Case("zero learning rate", ("--learning-rate", "0"), "--learning-rate: got 0.0"),
    Case("learning rate above 1", ("--learning-rate", "2"), "--learning-rate: got 2.0"),
    Case(
        "checkpoints off the report grid",
        ("--report-every", "10", "--checkpoint-every", "15"),
        "--checkpoint-every: got 15",
    ),
    Case("too few evaluation images", ("--eval-images", "500"), "--eval-images: got 500"),
    Case("negative seed", ("--seed", "-3"), "--seed: got -3"),
    Case("retries below -1", ("--max-failures", "-2"), "--max-failures: got -2"),
    Case("misspelt flag", ("--num-sample", "4"), "unrecognized arguments: --num-sample"),
    # -- names ------------------------------------------------------------------------------
    Case("space in the name", ("--name", "my sweep"), "--name: got 'my sweep'"),
    Case("name escaping the storage folder", ("--name", "../escape"), "--name: got '../escape'"),
    Case("name of 101 characters", ("--name", "x" * 101), "--name: got 'xxxx"),
    # -- config files -----------------------------------------------------------------------
    Case("config file missing", ("--config", "{dir}/nope.toml"), "--config: got"),
    Case(
        "config file not TOML",
        ("--config", "{dir}/s.toml"),
        "not valid TOML",
        text("s.toml", "num-samples: 12\n"),
    ),
    Case(
        "unknown key in the config file",
        ("--config", "{dir}/s.toml"),
        "unknown setting 'num_sample'",
        text("s.toml", "num_sample = 12\n"),
    ),
    Case(
        "wrong type in the config file",
        ("--config", "{dir}/s.toml"),
        "--num-samples: not an integer: 'many'",
        text("s.toml", 'num-samples = "many"\n'),
    ),
    Case(
        "bad value in the config file",
        ("--config", "{dir}/s.toml"),
        "--beta-range: got '0.0,8.0'",
        text("s.toml", "beta-range = [0, 8]\n"),
    ),
    Case(
        "resume given as a string in the config file",
        ("--config", "{dir}/s.toml"),
        "resume: got 'yes'; allowed: true, false or \"auto\"",
        text("s.toml", 'resume = "yes"\n'),
    ),
    Case(
        "unknown preset in the config file",
        ("--config", "{dir}/s.toml"),
        "--preset: invalid choice: 'huge'",
        text("s.toml", 'preset = "huge"\n'),
    ),
    # -- datasets ---------------------------------------------------------------------------
    Case("unknown dataset", ("--dataset", "mnist"), "--dataset: got 'mnist'"),
    Case("dataset file missing", ("--dataset", "shapes3d:/no/such/file.h5"), "an existing file"),
    Case(
        "dSprites file without images",
        ("--dataset", "dsprites-npz:{dir}/d.npz"),
        "missing key 'imgs'",
        npz("d.npz", imgs=None),
    ),
    Case(
        "dSprites factors of the wrong shape",
        ("--dataset", "dsprites-npz:{dir}/d.npz"),
        "latents_classes has shape (10, 6)",
        npz("d.npz", latents_classes=np.zeros((10, 6), np.int64)),
    ),
    Case(
        "dSprites images as floats",
        ("--dataset", "dsprites-npz:{dir}/d.npz"),
        "imgs has dtype float32, not uint8",
        npz("d.npz", imgs=np.zeros((4, 64, 64), np.float32)),
    ),
    Case(
        "dSprites images not binary",
        ("--dataset", "dsprites-npz:{dir}/d.npz"),
        "imgs is not binary (max value 255)",
        npz("d.npz", imgs=np.full((4, 64, 64), 255, np.uint8)),
    ),
    Case(
        "dSprites file with too few images",
        ("--dataset", "dsprites-npz:{dir}/d.npz"),
        "imgs has shape (4, 64, 64)",
        npz("d.npz"),
    ),
    Case(
        "dSprites file truncated",
        ("--dataset", "dsprites-npz:{dir}/cut.npz"),
        "unreadable or truncated npz",
        truncated_npz,
    ),
    Case(
        "dSprites file that is not a zip",
        ("--dataset", "dsprites-npz:{dir}/d.npz"),
        "unreadable or truncated npz",
        text("d.npz", b"\x89PNG not a zip"),
    ),
    Case(
        "dSprites images as pickled objects",
        ("--dataset", "dsprites-npz:{dir}/d.npz"),
        "imgs has dtype object",
        npz("d.npz", imgs=np.array([{"code": "runs"}], dtype=object)),
    ),
    Case(
        "Shapes3D file with the wrong image size",
        ("--dataset", "shapes3d:{dir}/s.h5"),
        "images is uint8 (3, 32, 32, 3)",
        h5("s.h5", (3, 32, 32, 3)),
    ),
    Case(
        "Shapes3D file that is not HDF5",
        ("--dataset", "shapes3d:{dir}/s.h5"),
        "unreadable or truncated HDF5 file",
        text("s.h5", "images,labels\n"),
    ),
    # -- tracking and storage ---------------------------------------------------------------
    Case("unknown tracking scheme", ("--tracking-uri", "ftp://host/x"), "got 'ftp://host/x'"),
    Case(
        "sqlite file in a missing folder",
        ("--tracking-uri", "sqlite:////no/such/dir/m.db"),
        "a sqlite file in an existing, writable directory",
    ),
    Case(
        "tracking server not running",
        ("--tracking-uri", "http://127.0.0.1:9", S, "{dir}/rr"),
        "--tracking-uri: cannot reach the MLflow server at 'http://127.0.0.1:9'",
    ),
    Case("unknown storage scheme", (S, "ftp://host/x"), "--storage-path: got 'ftp://host/x'"),
    Case(
        "a password inside a tracking URI (redacted in the answer)",
        ("--tracking-uri", "http://alice:hunter2@127.0.0.1:9", S, "{dir}/rr"),
        "cannot reach the MLflow server at 'http://alice:***@127.0.0.1:9'",
    ),
    Case(
        "an S3 secret inside a storage URI (redacted in the answer)",
        (S, "s4://AKIDEXAMPLE:hunter2@bucket/sweeps"),
        "--storage-path: got 's4://AKIDEXAMPLE:***@bucket/sweeps'",
    ),
    Case(
        "--resume with a value other than auto",
        ("--resume", "later"),
        "--resume: got 'later'; allowed",
    ),
    Case(
        "S3 storage with an option pyarrow does not know",
        (S, "s3://bucket/x?endpoint=127.0.0.1:9000"),
        "Unexpected query parameter in S3 URI: 'endpoint'",
    ),
    Case(
        "storage path that is a file",
        (S, "{dir}/f"),
        "a directory (this is a file)",
        text("f", "x"),
    ),
    Case(
        "storage path under a file",
        (S, "{dir}/f/rr"),
        "is not a writable directory",
        text("f", "x"),
    ),
    Case("malformed cluster address", ("--address", "my cluster"), "--address: got 'my cluster'"),
    # -- resuming ---------------------------------------------------------------------------
    Case(
        "resume of a sweep that does not exist",
        ("--resume", "--name", "nothing-here", S, "{dir}/rr"),
        "--resume: no sweep named 'nothing-here'",
    ),
    Case(
        "resume with a changed budget",
        ("--preset", "smoke", S, "{dir}/rr", "--resume", "--recon-budget", "123"),
        "--recon-budget: the sweep was started with 1200.0, got 123.0",
        existing_sweep("--preset", "smoke"),
    ),
    Case(
        "resume with a changed search space",
        ("--preset", "smoke", S, "{dir}/rr", "--resume", "--beta-range", "1,8"),
        "--beta-range: the sweep was started with [1.0, 32.0], got [1.0, 8.0]",
        existing_sweep("--preset", "smoke"),
    ),
    Case(
        "resume with another retry limit",
        ("--preset", "smoke", S, "{dir}/rr", "--resume", "--max-failures", "5"),
        "--max-failures: the sweep was started with 2, got 5",
        existing_sweep("--preset", "smoke"),
    ),
    Case(
        "starting a sweep that exists without --resume",
        ("--preset", "smoke", S, "{dir}/rr"),
        "pass --resume to continue it",
        existing_sweep("--preset", "smoke"),
    ),
    # -- your own images (no factors) -------------------------------------------------------
    Case(
        "a metric that needs factors on your own images",
        ("--dataset", "images:{dir}/cells", "--metric", "mig"),
        "--metric: got 'mig'; allowed: udr, the one metric that needs no ground-truth factors",
        image_folder("cells"),
    ),
    Case(
        "UDR with one seed per setting",
        ("--dataset", "images:{dir}/cells", "--replicates", "1"),
        "--metric: got 'udr'; allowed: udr with at least 2 seeds per setting",
        image_folder("cells"),
    ),
    Case(
        "an empty folder of images",
        ("--dataset", "images:{dir}/cells"),
        "empty folder (no files in it or its subfolders)",
        bad_image_folder("cells", "empty"),
    ),
    Case(
        "an image file that does not decode",
        ("--dataset", "images:{dir}/cells"),
        "1 of 5 image files are unreadable or corrupt: broken.png (",
        bad_image_folder("cells", "corrupt"),
    ),
    Case(
        "greyscale and colour images mixed",
        ("--dataset", "images:{dir}/cells"),
        "mixed channel counts: 4 greyscale",
        bad_image_folder("cells", "mixed"),
    ),
    Case(
        "an image smaller than 64 px",
        ("--dataset", "images:{dir}/cells"),
        "1 of 5 images are smaller than 64 px on the short side: thumb.png (80×32)",
        bad_image_folder("cells", "too small"),
    ),
    Case(
        "UDR with the Pareto objective",
        ("--metric", "udr", "--objective", "pareto"),
        "--metric: got 'udr'; allowed: udr with at least 2 seeds per setting and --objective "
        "constrained",
    ),
]


def answer(case: Case, folder: Path) -> tuple[int, str, list[str]]:
    """Run the script's ``main`` on the case in ``folder``: exit code, stderr, and the files
    that were not there before (the case's own set-up excluded)."""
    if case.setup:
        case.setup(folder)
    before = sorted(str(p) for p in folder.rglob("*"))
    argv = [a.replace("{dir}", str(folder)) for a in case.argv]
    err = io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code
    finally:
        os.chdir(cwd)
    new = sorted(set(str(p) for p in folder.rglob("*")) - set(before))
    return code, err.getvalue(), new


def _clean_environment() -> None:
    for variable in ("RAY_ADDRESS", "BETAVAE_STORAGE_PATH", "MLFLOW_TRACKING_URI"):
        os.environ.pop(variable, None)


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_bad_input_is_one_line_exit_2_before_ray_with_nothing_written(case, tmp_path):
    _clean_environment()
    code, err, new = answer(case, tmp_path)
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith("sweeps/beta_frontier.py: error: "), err
    assert case.expect in err, err
    assert "hunter2" not in err  # credentials are never printed
    assert new == []  # no mlflow.db, no ray_results, no report
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def test_the_catalogue_is_large_and_its_cases_distinct():
    assert len(CASES) >= 30
    assert len({c.what for c in CASES}) == len(CASES)


def table() -> str:
    """The catalogue as Markdown, with each case's real answer (folder shown as ``DIR``)."""
    _clean_environment()
    rows = []
    for number, case in enumerate(CASES, 1):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp).resolve()
            _, err, _ = answer(case, folder)
        line = err.strip().removeprefix("sweeps/beta_frontier.py: error: ")
        line = line.replace(str(folder), "DIR")
        line = line.replace(f"at most {os.cpu_count()}, the CPUs", "at most N, the CPUs")
        flags = " ".join(a if " " not in a else repr(a) for a in case.argv)
        flags = flags.replace("{dir}", "DIR")
        if len(flags) > 90:
            flags = flags[:87] + "…"
        rows.append(f"| {number} | {case.what} | `{flags}` | {_cell(line)} |")
    head = [
        "# Bad input: what the sweep says",
        "",
        "Every row is a command `python sweeps/beta_frontier.py FLAGS` refuses before Ray starts:",
        "one line on stderr (shown without its `sweeps/beta_frontier.py: error:` prefix), exit",
        "code 2, nothing written. `DIR` is the folder the command ran in; rows that use a file",
        "write it there first (see `tests/sweeps/test_bad_inputs.py`).",
        "",
        "Generated by `python tests/sweeps/test_bad_inputs.py > sweeps/BAD_INPUTS.md`; the tests"
        " fail",
        "when this table and the script disagree.",
        "",
        "| # | Bad input | Flags | What the script says |",
        "|---|---|---|---|",
    ]
    return "\n".join(head + rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


@pytest.mark.slow
def test_the_documented_table_is_the_catalogue():
    assert TABLE.read_text() == table(), (
        "sweeps/BAD_INPUTS.md is stale: "
        "python tests/sweeps/test_bad_inputs.py > sweeps/BAD_INPUTS.md"
    )


if __name__ == "__main__":
    sys.stdout.write(table())
