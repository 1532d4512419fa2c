"""Redaction without paying twice: large texts already passed through `k2lsp.redact.redact`
are remembered (a small LRU of the redacted strings), so the same tool output is scanned once
even though it reaches the model, the event stream and the trajectory.

Redacting a redacted text is a no-op, so remembering the *output* is sound; the memory is
dropped whenever a new secret is registered.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from k2lsp import redact as _redact

MIN_CACHED = 1024  # shorter strings are cheap to rescan
MAX_ENTRIES = 64

_safe: OrderedDict[str, None] = OrderedDict()
_lock = threading.Lock()
_known_version = -1


def _version() -> int:
    return _redact.secrets_version()


def redact_text(text: str) -> str:
    """`redact(text)`, skipping the scan for a large text that is already redacted."""
    global _known_version
    if len(text) < MIN_CACHED:
        return _redact.redact(text)
    with _lock:
        if _known_version != _version():
            _safe.clear()
            _known_version = _version()
        if text in _safe:
            _safe.move_to_end(text)
            return text
    out = _redact.redact(text)
    with _lock:
        _safe[out] = None
        while len(_safe) > MAX_ENTRIES:
            _safe.popitem(last=False)
    return out


def mark_safe(text: str) -> str:
    """Remember `text` as redacted (it was built only from redacted text); returns it."""
    if len(text) >= MIN_CACHED:
        with _lock:
            _safe[text] = None
            while len(_safe) > MAX_ENTRIES:
                _safe.popitem(last=False)
    return text


def redact_tree(obj: Any) -> Any:
    """A copy of a JSON-like object with every string redacted (like `redact_obj`)."""
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, dict):
        return {k: redact_tree(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_tree(v) for v in obj]
    return obj
