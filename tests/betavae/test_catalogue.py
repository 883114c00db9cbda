"""The choices the command lines offer (``betavae.catalogue``) are the ones the code has, and
listing or checking them imports neither torch nor scikit-learn."""

from __future__ import annotations

import subprocess
import sys

import betavae.data as data
from betavae import catalogue
from betavae.metrics import PRIMARY_KEY
from betavae.metrics.evaluate import MODES


def test_the_catalogue_names_what_the_packages_build():
    assert tuple(MODES) == catalogue.METRIC_MODES
    assert PRIMARY_KEY is catalogue.PRIMARY_KEY
    assert tuple(data._PROCEDURAL) == catalogue.PROCEDURAL_DATASETS
    assert tuple(data._FILES) == tuple(data._FILE_CHECKS) == catalogue.FILE_DATASETS


def test_checking_a_sweeps_flags_imports_no_torch():
    code = (
        "import sys\n"
        "from sweeps.config import parse_settings\n"
        "parse_settings(['--preset', 'cpu', '--metric', 'dci', '--dataset', 'dsprites-noisy'])\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'ray', 'mlflow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
