"""A URL as it may be shown to the user: no `user:password@` part, no query or fragment (API
keys hide there), so an error can name the host it called without leaking the key."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def host_url(base_url: str) -> str:
    """`https://user:sk-…@host:8443/v1?key=…` -> `https://host:8443/v1`."""
    try:
        parts = urlsplit(base_url.strip())
        port = parts.port
    except ValueError:
        return "(an unparsable base URL)"
    host = parts.hostname or ""
    if port:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
