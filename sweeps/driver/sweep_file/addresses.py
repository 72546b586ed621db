"""Which addresses the sweep file's alert webhook may name: never a link-local or cloud
metadata address unless the user says so (diagnostics.alert_webhook_allow_private).
The same rule judges the URL at validation and the resolved address at post time."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    }
)
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)


def forbidden_target(url: str) -> str | None:
    """Why `url` is no place to post alerts to without the user's explicit word, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host, got {url!r}"
    host = parts.hostname.lower().rstrip(".")
    if host in METADATA_HOSTS:
        return f"{host} is a cloud metadata service"
    try:
        return forbidden_address(host)
    except ValueError:
        return None  # a name: checked again against what it resolves to, when posting


def forbidden_address(text: str) -> str | None:
    """Why an IP address is no place to post alerts to, or None."""
    address = ipaddress.ip_address(text)
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata service"
    if address.is_link_local:
        return f"{address} is a link-local address (where cloud metadata services answer)"
    return None
