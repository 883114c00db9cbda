"""``evaluate``: the chosen metrics for one trained model, with stable result keys.

One set of training codes and one of test codes serve MIG, DCI, SAP, modularity/explicitness
and the unsupervised scores; the β-VAE and FactorVAE metrics draw their own batches; a
:class:`~betavae.metrics.sampling.CodeCache` encodes each image of a deterministic dataset at
most once across all of them. Every metric needs ground-truth factors; on a dataset without
them (``images:PATH``) only ``kl`` and ``active_latents`` are scored (``metrics=[]``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from betavae.catalogue import FACTOR_METRICS, METRICS
from betavae.data import ImageDataset
from betavae.metrics._checks import DEFAULT_LOGISTIC, Logistic
from betavae.metrics.dci import Predictor, dci
from betavae.metrics.information import mig, modularity_explicitness, unsupervised
from betavae.metrics.sampling import (
    CodeCache,
    Encode,
    as_cache,
    beta_vae_score,
    factor_vae_score,
    sample_codes,
)
from betavae.metrics.sap import sap
from betavae.versions import library_versions

#: A latent is active when its mean KL exceeds this many nats.
ACTIVE_KL_NATS = 0.01


@dataclass(frozen=True)
class MetricSettings:
    """Sample sizes and options of the metric protocols (defaults: disentanglement_lib's)."""

    num_train: int = 10_000
    """Coded points behind MIG, DCI, SAP, modularity/explicitness and the unsupervised scores."""
    num_test: int = 5_000
    """Held-out coded points of DCI, SAP and explicitness."""
    sampling_train: int = 10_000
    """Training points of the β-VAE and FactorVAE metrics' classifiers."""
    sampling_eval: int = 5_000
    """Evaluation points of the β-VAE and FactorVAE metrics."""
    classifier_points: int | None = None
    """If set, SAP's and explicitness' classifiers train on only this many of the training
    points (MIG, DCI and modularity still use all of them)."""
    batch_size: int = 64
    """Images per point of the β-VAE and FactorVAE metrics."""
    num_variance_estimate: int = 10_000
    """Images behind the FactorVAE metric's global variances."""
    prune_threshold: float = 0.05
    """FactorVAE: latents whose std is below this are ignored."""
    num_bins: int = 20
    """Histogram bins per latent for the discrete mutual information."""
    predictor: Predictor = "gbt"
    """DCI's classifier (see :func:`betavae.metrics.dci.dci`)."""
    logistic: Logistic = DEFAULT_LOGISTIC
    """The β-VAE metric's and explicitness' logistic regression (``fit_logistic``)."""


REFERENCE = MetricSettings()
#: The same protocols with fewer classifier points and a shorter, steeper GBT; ~5× cheaper,
#: scores within 0.05 of REFERENCE on trained models (bench/metrics.py measures both).
FAST = MetricSettings(
    sampling_train=2_000,
    sampling_eval=1_000,
    num_variance_estimate=5_000,
    classifier_points=1_000,
    predictor="gbt-fast",
)


#: The smoke preset's: every protocol on a fifth of FAST's points. It exercises the code path
#: of every score in ~1 s; the scores are rough (MIG on 2,000 points) and not comparable.
SMOKE = dataclasses.replace(
    FAST,
    num_train=2_000,
    num_test=1_000,
    sampling_train=500,
    sampling_eval=250,
    num_variance_estimate=1_000,
    classifier_points=500,
)


MODES = {"reference": REFERENCE, "fast": FAST, "smoke": SMOKE}


def settings_of(mode: str | MetricSettings) -> MetricSettings:
    """The sample sizes and options a mode name (``MODES``) or explicit settings stand for."""
    settings = MODES.get(mode, mode) if isinstance(mode, str) else mode
    if not isinstance(settings, MetricSettings):
        raise ValueError(f"mode must be one of {', '.join(MODES)} or MetricSettings, got {mode!r}")
    return settings


def describe_mode(mode: str | MetricSettings) -> dict[str, object]:
    """How scores are measured in ``mode``: its name and every setting, JSON-ready (what a
    sweep records with its scores)."""
    settings = settings_of(mode)
    name = next((k for k, v in MODES.items() if v == settings), "custom")
    return {"mode": name, **dataclasses.asdict(settings)}


@dataclass
class Evaluation:
    """Scores under stable keys (``metric.mig``, ``metric.dci.disentanglement``, …)."""

    scores: dict[str, float]
    seconds: dict[str, float]
    settings: dict[str, object]
    images_encoded: int
    versions: dict[str, str] = field(default_factory=library_versions)
    kl_per_dim: list[float] | None = None


def evaluate(
    dataset: ImageDataset,
    encode: Encode | CodeCache,
    *,
    metrics: Sequence[str] = METRICS,
    mode: Literal["reference", "fast", "smoke"] | MetricSettings = "reference",
    seed: int = 0,
    kl_per_dim: Sequence[float] | None = None,
) -> Evaluation:
    """Compute ``metrics`` for the model behind ``encode`` (or a shared :class:`CodeCache`).

    ``mode``: ``"reference"`` (disentanglement_lib's sample sizes), ``"fast"``, ``"smoke"``
    or explicit :class:`MetricSettings`. ``kl_per_dim`` (mean KL of each latent, e.g. from
    ``Trainer.evaluate``) adds ``kl`` and ``active_latents``. Seeded: the same model, data and
    seed give the same scores. A dataset without factors takes no metric (ValueError).
    """
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    needing = [m for m in metrics if m in FACTOR_METRICS]
    if needing and not dataset.has_factors:
        raise ValueError(
            f"metric {needing[0]!r} needs ground-truth factors, which dataset {dataset.name!r} "
            "has none of; pass metrics=[] to score only kl and active_latents"
        )
    settings = settings_of(mode)
    rng = np.random.default_rng(seed)
    cache = as_cache(dataset, encode)
    encoded_before = cache.encoded
    scores: dict[str, float] = {}
    seconds: dict[str, float] = {}

    def timed(name: str, fn):
        start = time.perf_counter()
        result = fn()
        seconds[name] = time.perf_counter() - start
        return result

    s = settings
    if set(metrics) & {"mig", "dci", "sap", "modularity", "unsupervised"}:
        train = timed("sample", lambda: sample_codes(dataset, cache, s.num_train, rng))
    if set(metrics) & {"dci", "sap", "modularity"}:  # the scores with held-out points
        test = timed("sample_test", lambda: sample_codes(dataset, cache, s.num_test, rng))
    if "beta_vae" in metrics:
        r = timed("beta_vae", lambda: beta_vae_score(
            dataset, cache, rng, batch_size=s.batch_size, num_train=s.sampling_train,
            num_eval=s.sampling_eval, logistic=s.logistic))  # fmt: skip
        scores["metric.beta_vae"] = r["eval_accuracy"]
        scores["metric.beta_vae.train_accuracy"] = r["train_accuracy"]
    if "factor_vae" in metrics:
        r = timed("factor_vae", lambda: factor_vae_score(
            dataset, cache, rng, batch_size=s.batch_size, num_train=s.sampling_train,
            num_eval=s.sampling_eval, num_variance_estimate=s.num_variance_estimate,
            prune_threshold=s.prune_threshold))  # fmt: skip
        scores["metric.factor_vae"] = r["eval_accuracy"]
        scores["metric.factor_vae.train_accuracy"] = r["train_accuracy"]
        scores["metric.factor_vae.num_active_dims"] = float(r["num_active_dims"])
    if "mig" in metrics:
        scores["metric.mig"] = timed("mig", lambda: mig(*train, num_bins=s.num_bins))["mig"]
    if "dci" in metrics:
        r = timed("dci", lambda: dci(*train, *test, predictor=s.predictor, seed=seed))
        scores.update({f"metric.dci.{k}": v for k, v in r.items()})
    fit = slice(None, s.classifier_points)  # the points SAP's and explicitness' classifiers see
    if "sap" in metrics:
        r = timed("sap", lambda: sap(train[0][fit], train[1][fit], *test))
        scores["metric.sap"] = r["sap"]
    if "modularity" in metrics:
        r = timed("modularity", lambda: modularity_explicitness(
            *train, *test, num_bins=s.num_bins, classifier_points=s.classifier_points,
            logistic=s.logistic))  # fmt: skip
        scores["metric.modularity"] = r["modularity"]
        scores["metric.explicitness.train"] = r["explicitness_train"]
        scores["metric.explicitness.test"] = r["explicitness_test"]
    if "unsupervised" in metrics:
        r = timed("unsupervised", lambda: unsupervised(train[0], num_bins=s.num_bins))
        scores.update({f"metric.unsupervised.{k}": v for k, v in r.items()})
    kl = None
    if kl_per_dim is not None:
        kl = [float(v) for v in kl_per_dim]
        scores["kl"] = float(sum(kl))
        scores["active_latents"] = float(sum(v > ACTIVE_KL_NATS for v in kl))
    return Evaluation(
        scores=scores,
        seconds=seconds,
        settings={**dataclasses.asdict(settings), "seed": seed, "dataset": dataset.name},
        images_encoded=cache.encoded - encoded_before,
        kl_per_dim=kl,
    )
