"""Keep secrets out of output: known secret values (API keys in use) and common key patterns
are replaced by a marker in tool output, events, logs and trajectories."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

MARKER = "[REDACTED]"

_KNOWN: set[str] = set()
_LOCK = threading.Lock()

# Common credential shapes. Conservative: long, high-entropy tokens with known prefixes.
PATTERNS: list[re.Pattern[str]] = [
    re.compile(r"\bsk-(?:or-v1-|proj-|ant-)?[A-Za-z0-9_\-]{20,}"),  # OpenAI/Moonshot/OpenRouter
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}\b"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),  # Slack
    re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),  # Google
    re.compile(r"\bfw_[A-Za-z0-9]{20,}\b"),  # Fireworks
    re.compile(r"\bcpk_[A-Za-z0-9.]{20,}\b"),  # Chutes
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{20,}"),
]


def register_secret(value: str | None) -> None:
    """Remember a secret value (an API key in use) so every later `redact` removes it."""
    if value and len(value) >= 6:
        with _LOCK:
            _KNOWN.add(value)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """`text` with known secrets and key-shaped tokens replaced by [REDACTED]."""
    if not text:
        return text
    with _LOCK:
        known = sorted(_KNOWN | {s for s in extra if s and len(s) >= 6}, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MARKER)
    for pat in PATTERNS:
        if pat.groups:
            text = pat.sub(lambda m: m.group(1) + MARKER, text)
        else:
            text = pat.sub(MARKER, text)
    return text


def redact_obj(obj: Any) -> Any:
    """A deep copy of a JSON-like object with every string redacted."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj
