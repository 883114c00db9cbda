"""Error text that carries a credential (MLflow's and the stores' errors quote the URI they
failed on) is redacted in every MLflow tag the sweep writes it to."""

from __future__ import annotations

from typing import Any

import pytest

SECRET = "hunter2-secret"
ERRORS = [
    f"could not connect to postgresql://sweeper:{SECRET}@db.internal:5432/mlflow",
    f"GET https://{SECRET}@mlflow.example.com/api failed",
    f"s3://bucket/x?access_key=AKIA&secret_key={SECRET} refused",
]


class RecordingClient:
    """An MlflowClient stand-in that keeps every tag written."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.written.append(f"{key}={value}")

    def log_batch(self, run_id: str, metrics=(), params=(), tags=()) -> None:
        self.written += [f"{t.key}={t.value}" for t in tags]

    def set_terminated(self, run_id: str, status: str | None = None) -> None:
        self.written.append(f"status={status}")


@pytest.mark.parametrize("message", ERRORS)
def test_the_parent_runs_error_tag_holds_no_credential(message):
    from sweeps.driver.parent import ParentRun

    client = RecordingClient()
    ParentRun(client, "0", "parent").failed(RuntimeError(message))
    assert any(w.startswith("error=RuntimeError") for w in client.written)
    assert not any(SECRET in w for w in client.written), client.written


@pytest.mark.parametrize("message", ERRORS)
def test_a_trial_runs_error_tag_holds_no_credential(message):
    from sweeps.tracking.writer import MLflowWriter

    writer = MLflowWriter("sqlite:///unused.db", "0", "parent", background=False)
    client = RecordingClient()
    writer._client = client
    writer._fail("run", message)
    assert "status=FAILED" in client.written
    assert not any(SECRET in w for w in client.written), client.written
