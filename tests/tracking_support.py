"""What the MLflow callback's tests share: a trial's config, a stand-in for Tune's trial, and
the runs a store holds for a sweep's trials."""

from __future__ import annotations

from dataclasses import dataclass, field

CONFIG = {
    "objective": "beta",
    "beta": 4.0,
    "latent_dim": 6,
    "seed": 1,
    "replicate": 1,
    "steps": 40,
    "batch_size": 32,
    "model": "burgess",
    "dataset": "dsprites",
}


@dataclass
class FakeTrial:
    """What the callback reads of Tune's ``Trial``."""

    trial_id: str
    config: dict = field(default_factory=lambda: dict(CONFIG))
    last_result: dict = field(default_factory=dict)
    checkpoint: object = None
    error: str | None = None

    def get_error(self):
        return self.error

    def __str__(self):
        return f"b4-z6-s1-{self.trial_id}"


def children(client, exp):
    """The trial runs (not the parent) of experiment ``exp``."""
    runs = client.search_runs([exp])
    return [r for r in runs if r.data.tags.get("betavae.role") == "trial"]
