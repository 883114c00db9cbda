"""Fixtures of the sweep-side unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def store(tmp_path):
    """``(client, experiment id, parent run id, tracking URI)`` of a fresh sqlite store holding
    one sweep's parent run: what the MLflow callback writes into."""
    from mlflow.tracking import MlflowClient

    from sweeps.tracking.runs import experiment_id, parent_run

    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    exp = experiment_id(client, "unit")
    parent = parent_run(client, exp, "/sweeps/unit", run_name="unit", tags={}, params={"a": 1})
    return client, exp, parent, f"sqlite:///{tmp_path / 'm.db'}"
