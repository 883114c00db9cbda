"""Disentanglement metrics: the seed's β-VAE metric and the field's standard suite.

Array-level functions take codes ``[N, d]`` (posterior means) and integer factor classes
``[N, k]`` and return dicts of named floats; sampling metrics take a ground-truth dataset and an
``encode`` function; :func:`evaluate` runs a chosen set for one model under stable keys.
Definitions and defaults follow disentanglement_lib (Locatello et al. 2019).
"""

from betavae.catalogue import METRICS, PRIMARY_KEY
from betavae.metrics.dci import dci, dci_from_importance
from betavae.metrics.evaluate import (
    FAST,
    REFERENCE,
    Evaluation,
    MetricSettings,
    describe_mode,
    evaluate,
)
from betavae.metrics.information import (
    mig,
    modularity_explicitness,
    modularity_from_mutual_info,
    unsupervised,
)
from betavae.metrics.sampling import CodeCache, beta_vae_score, factor_vae_score, sample_codes
from betavae.metrics.sap import sap
from betavae.metrics.udr import UDR_POINTS, setting_udr, udr, udr_inputs

__all__ = [
    "FAST",
    "METRICS",
    "PRIMARY_KEY",
    "REFERENCE",
    "UDR_POINTS",
    "CodeCache",
    "Evaluation",
    "MetricSettings",
    "beta_vae_score",
    "dci",
    "dci_from_importance",
    "describe_mode",
    "evaluate",
    "factor_vae_score",
    "mig",
    "modularity_explicitness",
    "modularity_from_mutual_info",
    "sample_codes",
    "sap",
    "setting_udr",
    "udr",
    "udr_inputs",
    "unsupervised",
]
