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

# Common credential shapes. Conservative: long tokens with known prefixes, private key blocks,
# and quoted literals assigned to key-named settings. A pattern with a group named `s` has only
# that group replaced (the key name and quotes stay readable).
PATTERNS: list[re.Pattern[str]] = [
    re.compile(r"\bsk-(?:or-v1-|proj-|ant-)?[A-Za-z0-9_\-]{20,}"),  # OpenAI/Moonshot/OpenRouter
    re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}\b"),  # Stripe
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}\b"),
    re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}\b"),  # GitLab
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(
        r"(?i)(?:aws_secret_access_key|aws_session_token)[\"']?\s*[:=]\s*[\"']?"
        r"(?P<s>[A-Za-z0-9/+=]{40,})"
    ),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),  # Slack
    re.compile(r"\bxapp-[0-9]-[A-Za-z0-9-]{10,}\b"),
    re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/]{20,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),  # Google API key
    re.compile(r"\bya29\.[0-9A-Za-z_\-]{20,}"),  # Google OAuth token
    re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),  # Hugging Face
    re.compile(r"\bgsk_[A-Za-z0-9]{40,}\b"),  # Groq
    re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"),  # npm
    re.compile(r"\bpypi-AgE[A-Za-z0-9_\-]{50,}"),  # PyPI
    re.compile(r"\bfw_[A-Za-z0-9]{20,}\b"),  # Fireworks
    re.compile(r"\bcpk_[A-Za-z0-9.]{20,}\b"),  # Chutes
    re.compile(r"\beyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"),  # JWT
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)\bbearer\s+(?P<s>[A-Za-z0-9._~+/\-]{20,}=*)"),
    re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:(?P<s>[^/\s@]{6,})@"),  # URL credentials
    re.compile(
        r"(?i)(?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token"
        r"|private[_-]?key|password|passwd)[\"']?\s*[:=]\s*[\"'](?P<s>[^\"'\s]{8,})[\"']"
    ),
]


def _replace_secret(match: re.Match[str]) -> str:
    if "s" not in match.re.groupindex:
        return MARKER
    whole, start = match.group(0), match.start()
    return whole[: match.start("s") - start] + MARKER + whole[match.end("s") - start :]


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
        text = pat.sub(_replace_secret, text)
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
