"""The names a user can choose from, without importing torch or scikit-learn: the metrics and
their headline keys, the metric modes, the dataset specs and which of them have factors.

``betavae.metrics`` and ``betavae.data`` build on these names (and tests check that they
agree), so the sweep's command line can list and check choices in well under a second.
"""

from __future__ import annotations

METRICS = ("beta_vae", "factor_vae", "mig", "dci", "sap", "modularity", "unsupervised")
#: The key of each metric's headline score (what a sweep maximises).
PRIMARY_KEY = {
    "beta_vae": "metric.beta_vae",
    "factor_vae": "metric.factor_vae",
    "mig": "metric.mig",
    "dci": "metric.dci.disentanglement",
    "sap": "metric.sap",
    "modularity": "metric.modularity",
    "udr": "metric.udr",
}
#: Scores of a setting's models together (its seeds), not of one model: computed by the sweep
#: across finished seeds (``betavae.metrics.setting_udr``), not by ``evaluate``.
SETTING_METRICS = ("udr",)
#: The metric modes (``betavae.metrics.MODES`` holds their sample sizes).
METRIC_MODES = ("reference", "fast", "smoke")

#: Datasets generated in memory.
PROCEDURAL_DATASETS = ("dsprites", "dsprites-noisy", "dsprites-color")
#: Datasets read from a file or folder: ``NAME:PATH``.
FILE_DATASETS = ("dsprites-npz", "shapes3d", "images")
#: Dataset specs a user can name (``--dataset``).
DATASET_SPECS = (*PROCEDURAL_DATASETS, *(f"{name}:PATH" for name in FILE_DATASETS))
#: Datasets without ground-truth factors (the user's own images).
FACTORLESS_DATASETS = ("images",)
#: The metrics that need ground-truth factors: all of them. ``unsupervised`` scores codes
#: alone, but its points are drawn by sampling factors, as in disentanglement_lib.
FACTOR_METRICS = METRICS


def check_dataset_spec(spec: str) -> None:
    """Raise ``ValueError`` unless ``spec`` names a dataset (files are not opened)."""
    name, sep, path = spec.partition(":")
    if (not sep and name in PROCEDURAL_DATASETS) or (sep and name in FILE_DATASETS and path):
        return
    raise ValueError(f"dataset must be one of {', '.join(DATASET_SPECS)}; got {spec!r}")


def spec_has_factors(spec: str) -> bool:
    """Whether the dataset a spec names comes with ground-truth factors (the spec itself is
    not checked: see :func:`check_dataset_spec`)."""
    return spec.partition(":")[0] not in FACTORLESS_DATASETS
