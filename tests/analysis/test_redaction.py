"""Credentials in URIs and options are masked wherever the sweep writes or prints text
(``analysis.redaction``), in every form a tracking URI or a storage URI carries them."""

from __future__ import annotations

import pytest

from analysis.redaction import has_secret, redact, without_credentials

SECRET = "s3cr3t"


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://user:{SECRET}@db:5432/mlflow",
        f"postgresql://user:p'{SECRET}\"q@db/mlflow",  # quotes inside the password
        f"mysql://user:{SECRET}@db/mlflow?charset=utf8",
        f"https://{SECRET}@mlflow.example.com",  # a token alone
        f"https://user:{SECRET}@mlflow.example.com/",
        f"s3://KEY:{SECRET}@bucket/sweeps",
        f"s3://bucket/sweeps?access_key=KEY&secret_key={SECRET}&session_token={SECRET}",
        f"postgresql://db/mlflow?user=u&password={SECRET}&sslpassword={SECRET}",
        f"https://host/x?api_key={SECRET}",
        f"https://host/x?API_KEY={SECRET}",
        f"abfs://container@account.dfs.core.windows.net/p?sv=2024&sig={SECRET}",
        f"error: could not connect to 'postgresql://user:{SECRET}@db/m' (timeout)",
    ],
)
def test_every_form_of_a_credential_is_masked(text):
    assert SECRET not in redact(text), redact(text)
    assert has_secret(text)
    assert SECRET not in without_credentials(text.split(" ")[-1].strip("'()"))


def test_what_is_not_a_secret_is_kept():
    for text in (
        "sqlite:///mlflow.db",
        "s3://bucket/sweeps?endpoint_override=127.0.0.1:9000&scheme=http",
        "http://127.0.0.1:5000/#/experiments/1",
    ):
        assert redact(text) == text and not has_secret(text)
    assert redact("postgresql://user:pw@db/m") == "postgresql://user:***@db/m"
    assert without_credentials("s3://KEY:SECRET@bucket/p?secret_key=x&region=eu") == (
        "s3://bucket/p?region=eu"
    )
