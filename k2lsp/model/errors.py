"""Classify what a K2 host answered into "retry after a delay" or "raise this typed error".

Follows the error table of k2-protocol.md; OpenRouter's wrapped upstream error
(`error.metadata.raw`) is inspected too. Messages are redacted: the key never appears.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from k2lsp.errors import (
    AuthError,
    ContextOverflow,
    HistoryRejected,
    ProviderError,
    QuotaExhausted,
)
from k2lsp.model.hosts import is_history_rejected, is_overflow, overflow_prompt_tokens
from k2lsp.redact import redact

_AFTER_RE = re.compile(r"after\s+(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE)
_QUOTA = ("exceeded_current_quota", "insufficient_quota", "insufficient balance", "quota")


@dataclass
class Failure:
    """One failed attempt: either retryable (with an optional forced delay) or fatal."""

    reason: str
    retry: bool
    delay_s: float | None = None  # the host told us how long to wait
    error: ProviderError | None = None
    status: int | None = None


def error_info(body: Any) -> tuple[str, str]:
    """(type, message) of an error body, looking inside OpenRouter's `metadata.raw` too."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return "", body
    if not isinstance(body, dict):
        return "", ""
    err = body.get("error", body)
    if not isinstance(err, dict):
        return "", str(err)
    etype = str(err.get("type") or err.get("code") or "")
    message = str(err.get("message") or "")
    raw = (err.get("metadata") or {}).get("raw") if isinstance(err.get("metadata"), dict) else None
    if raw:
        inner_type, inner_msg = error_info(raw)
        if inner_type:
            etype = inner_type
        if inner_msg:
            message = f"{message}: {inner_msg}" if message else inner_msg
    return etype, message


def retry_after(message: str, headers: Any = None) -> float | None:
    """Seconds the host asked us to wait ("try again after N seconds" or Retry-After)."""
    m = _AFTER_RE.search(message or "")
    if m:
        return float(m.group(1))
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def classify_status(
    status: int, body: Any, *, key_hint: str, secrets: tuple[str, ...] = (), headers: Any = None
) -> Failure:
    """Map an HTTP status and error body to a Failure."""
    etype, message = error_info(body)
    text = redact(f"HTTP {status} {etype or 'error'}: {message or 'no message'}", secrets)
    low = f"{etype} {message}".lower()
    if status in (401, 403):
        err: ProviderError = AuthError(
            f"The model host rejected the API key ({text}). Check {key_hint}.",
            status=status,
            kind="auth",
        )
        return Failure(text, False, error=err, status=status)
    if status == 402 or (status == 429 and any(q in low for q in _QUOTA)):
        err = QuotaExhausted(
            f"The account has no balance left ({text}). Top up at the host or switch provider.",
            status=status,
            kind="quota",
        )
        return Failure(text, False, error=err, status=status)
    if status == 429:
        return Failure(text, True, retry_after(message, headers), status=status)
    if status in (400, 413) and is_overflow(low):
        overflow = ContextOverflow(
            f"The prompt does not fit the model's context ({text}).", status=status, kind="context"
        )
        overflow.prompt_tokens = overflow_prompt_tokens(body, message)
        return Failure(text, False, error=overflow, status=status)
    if status in (400, 422, 500) and is_history_rejected(low):
        err = HistoryRejected(
            f"The model host cannot parse the conversation ({text}); the same request would "
            "fail again, so it is not retried. Start a new run; if this repeats, report it "
            "with the trajectory.",
            status=status,
            kind="history_rejected",
        )
        return Failure(text, False, error=err, status=status)
    if status == 404:
        return Failure(text, False, status=status)  # the client turns it into ModelNotFound
    if status in (408, 409) or status >= 500:
        return Failure(text, True, retry_after(message, headers), status=status)
    kind = "content_filter" if "content_filter" in low or "high risk" in low else "bad_request"
    err = ProviderError(
        f"The model host refused the request ({text}). This is not retried; check the "
        "model id, provider and settings.",
        status=status,
        kind=kind,
    )
    return Failure(text, False, error=err, status=status)


def classify_stream_error(obj: Any, *, key_hint: str, secrets: tuple[str, ...] = ()) -> Failure:
    """An `{"error": ...}` event inside a 200 stream (OpenRouter does this)."""
    etype, message = error_info(obj)
    low = f"{etype} {message}".lower()
    code = obj.get("error", {}).get("code") if isinstance(obj, dict) else None
    status = code if isinstance(code, int) else (429 if "rate" in low or "overload" in low else 502)
    failure = classify_status(status, obj, key_hint=key_hint, secrets=secrets)
    if failure.error is None or failure.retry:
        failure.retry = status != 404
    return failure
