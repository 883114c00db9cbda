"""Credentials inside URIs never leave the process: every URI is redacted where it is written
or printed (MLflow params and tags, ``sweep.json``, the Optuna study, reports, stdout, errors).

``postgresql://user:pw@host/db`` → ``postgresql://user:***@host/db`` (whatever the password
holds but ``@``, ``/`` and spaces, quotes included); ``s3://KEY:SECRET@bucket`` →
``s3://KEY:***@bucket``; a token alone before the host, ``https://TOKEN@host`` →
``https://***@host``; secret options (pyarrow's ``secret_key``/``session_token``, libpq's
``password``/``sslpassword``, ``api_key``, ``token``, an Azure SAS ``sig``, …) → ``***``.
The URIs themselves are used unchanged; Tune is handed sweep storage without its credentials
(``storage_for_tune``), so its own messages cannot print them either.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]*://"
_USERINFO = re.compile(rf"(?P<head>{_SCHEME}[^/@:\s'\"]*):[^/@\s]*@")
_TOKEN = re.compile(rf"(?P<head>{_SCHEME})[^/@:\s'\"]+@")
_SECRET_KEYS = (
    "secret_key|session_token|password|sslpassword|passwd|token|access_token|api_key|apikey"
    "|client_secret|sig"
)
_OPTIONS = re.compile(rf"(?P<key>\b(?:{_SECRET_KEYS}))=[^&\s'\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every URI's password or token and every secret option replaced by
    ``***``."""
    text = _USERINFO.sub(rf"\g<head>:{MASK}@", text)
    text = _TOKEN.sub(rf"\g<head>{MASK}@", text)
    return _OPTIONS.sub(rf"\g<key>={MASK}", text)


def redact_all(value: Any) -> Any:
    """``redact`` applied to every string inside dicts, lists and tuples."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_all(v) for v in value)
    return value


def has_secret(text: str) -> bool:
    return redact(text) != text


def without_credentials(uri: str) -> str:
    """``uri`` with no user:password and no secret options: a sweep's identity, the same
    whichever credentials reach it (``s3://KEY:SECRET@bucket/p`` → ``s3://bucket/p``)."""
    uri = re.sub(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]*@", r"\g<scheme>", uri)
    base, mark, options = uri.partition("?")
    kept = [o for o in options.split("&") if o and not _OPTIONS.fullmatch(o)]
    return base + (mark + "&".join(kept) if kept else "")
