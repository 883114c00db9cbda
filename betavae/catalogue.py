"""The names a user can choose from, without importing torch or scikit-learn: the metrics and
their headline keys, the metric modes, the dataset specs.

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
}
#: The metric modes (``betavae.metrics.MODES`` holds their sample sizes).
METRIC_MODES = ("reference", "fast", "smoke")

#: Datasets generated in memory.
PROCEDURAL_DATASETS = ("dsprites", "dsprites-noisy", "dsprites-color")
#: Datasets read from a file: ``NAME:PATH``.
FILE_DATASETS = ("dsprites-npz", "shapes3d")
#: Dataset specs a user can name (``--dataset``).
DATASET_SPECS = (*PROCEDURAL_DATASETS, *(f"{name}:PATH" for name in FILE_DATASETS))


def check_dataset_spec(spec: str) -> None:
    """Raise ``ValueError`` unless ``spec`` names a dataset (files are not opened)."""
    name, sep, path = spec.partition(":")
    if (not sep and name in PROCEDURAL_DATASETS) or (sep and name in FILE_DATASETS and path):
        return
    raise ValueError(f"dataset must be one of {', '.join(DATASET_SPECS)}; got {spec!r}")
