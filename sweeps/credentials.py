"""Tracking credentials: where they may come from, and how they never show.

MLflow users put credentials in the environment: MLFLOW_TRACKING_TOKEN, or
MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, and sometimes a
MLFLOW_TRACKING_URI with `user:password@` or a `?token=` in it. Those are used as
they are but shown as *** in every line sweep prints (the CLI filters its output
through `redact`) and never stored. A URI with credentials anywhere else (the
--tracking-uri flag, a sweep file, a sweep's journal) is refused without being
repeated: those are printed, stored and copied into manifests.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlsplit, urlunsplit

SECRET_ENV_VARS = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD")
SECRET_QUERY_KEYS = (
    "token",
    "password",
    "passwd",
    "secret",
    "key",
    "auth",
    "access_token",
    "api_key",
    "apikey",
)
MASK = "***"
CREDENTIALS_HINT = (
    "credentials do not belong in the URI: set MLFLOW_TRACKING_USERNAME and "
    "MLFLOW_TRACKING_PASSWORD "
    "(or MLFLOW_TRACKING_TOKEN) in the environment instead"
)


def has_credentials(uri: str) -> bool:
    """A user name or password before the host, or a token-like query parameter."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # urlsplit refuses it, but it may still hold a password
        return "@" in uri or any(f"{key}=" in uri.lower() for key in SECRET_QUERY_KEYS)
    return "@" in parts.netloc or any(
        key.lower() in SECRET_QUERY_KEYS for key, _ in parse_qsl(parts.query)
    )


def without_credentials(uri: str) -> str:
    """The URI with its user name, password and token-like query parameters removed: what a journal
    keeps."""
    return _rewritten(uri, masked=False)


def shown(uri: str) -> str:
    """The URI as sweep prints it: `https://***@host/...`, token-like parameters as ***."""
    return _rewritten(uri, masked=True)


def _rewritten(uri: str, *, masked: bool) -> str:
    """The URI with its credentials replaced by *** (`masked`) or dropped."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return MASK
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{MASK}@{host}" if masked and "@" in parts.netloc else host
    query = [
        (key, MASK if key.lower() in SECRET_QUERY_KEYS else value)
        for key, value in parse_qsl(parts.query)
        if masked or key.lower() not in SECRET_QUERY_KEYS
    ]
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            "&".join(f"{key}={value}" for key, value in query),
            parts.fragment,
        )
    )


def storable(uri: str) -> str:
    """The URI as it may be written down (a sweep's journal): never with credentials."""
    return without_credentials(uri) if has_credentials(uri) else uri


def with_environment_credentials(uri: str) -> str:
    """A stored URI with the credentials MLFLOW_TRACKING_URI gives the same store, if it does."""
    from_environment = os.environ.get("MLFLOW_TRACKING_URI", "")
    if (
        from_environment
        and has_credentials(from_environment)
        and without_credentials(from_environment) == uri
    ):
        return from_environment
    return uri


def environment_secrets() -> list[tuple[str, str]]:
    """(secret, what to show instead) for each secret in this process's environment, longest
    first."""
    pairs = [(os.environ.get(name, ""), MASK) for name in SECRET_ENV_VARS]
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri and has_credentials(uri):
        pairs.append((uri, shown(uri)))
        try:
            parts = urlsplit(uri)
            if "@" in parts.netloc:
                pairs.append((parts.netloc.rsplit("@", 1)[0], MASK))
            pairs += [
                (value, MASK)
                for key, value in parse_qsl(parts.query)
                if key.lower() in SECRET_QUERY_KEYS
            ]
        except ValueError:
            pass
    # A secret of a few characters would mask pieces of every line; credentials are longer.
    return sorted(
        {pair for pair in pairs if len(pair[0]) >= 4}, key=lambda pair: len(pair[0]), reverse=True
    )


def redact(text: str, secrets: list[tuple[str, str]] | None = None) -> str:
    """`text` with every environment secret replaced by what may be shown instead."""
    for secret, replacement in environment_secrets() if secrets is None else secrets:
        text = text.replace(secret, replacement)
    return text
