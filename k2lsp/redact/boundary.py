"""The redaction boundary: everything k2lsp sends out of the process passes here last.

Events are redacted where they are made (`k2lsp.agent.session.redacting`, the loop's stream
redactor),
but text also leaves by other roads: the final answer in `window/showMessage` and the
`k2lsp/delivery` notification, the task in an `applyEdit` label, the transcript file, stderr
logs, the terminal. This module is the one last pass for all of them:

- `lsp_body` / `lsp_message`: every outgoing JSON-RPC message (notifications, requests,
  responses, errors) with every string redacted — except the document text of a
  `workspace/applyEdit`, which is the user's file content and must arrive byte for byte (its
  `label` is redacted). A cheap scan of the serialised message skips the per-string work
  when nothing in it could need redaction (most messages);
- `safe_text` for files (the transcript) and terminal output; `SafeStream` wraps a text stream;
- `RedactingFormatter` for log handlers (stderr, log files).

Redaction removes the registered secrets (the API key in use) and key-shaped tokens
(`k2lsp.redact`). Redacting redacted text changes nothing, so passing twice is safe.
"""

from __future__ import annotations

import json
import logging
from typing import Any, TextIO

from k2lsp.redact import MARKER, known_secrets, may_change_json, redact, secret_pieces

APPLY_EDIT = "workspace/applyEdit"


def safe_text(text: str) -> str:
    """`text` as it may leave the process: redacted, and any cut-off piece of a registered
    secret (text shortened before it was redacted: a prefix or suffix of 12 characters or more,
    or 15 or more from its middle) removed too."""
    if not text:
        return text
    return _cut_secrets(redact(text))


def _cut_secrets(text: str) -> str:
    for secret in known_secrets():
        for offset, piece in secret_pieces(secret):
            start = text.find(piece)
            while start != -1:
                lo, hi, i, j = start, start + len(piece), offset, offset + len(piece)
                while lo > 0 and i > 0 and text[lo - 1] == secret[i - 1]:
                    lo, i = lo - 1, i - 1
                while hi < len(text) and j < len(secret) and text[hi] == secret[j]:
                    hi, j = hi + 1, j + 1
                text = text[:lo] + MARKER + text[hi:]
                start = text.find(piece, lo + len(MARKER))
    return text


def safe_json(obj: Any) -> Any:
    """A JSON-like tree with every string (keys too) passed through `safe_text`."""
    if isinstance(obj, str):
        return safe_text(obj)
    if isinstance(obj, dict):
        return {safe_text(k) if isinstance(k, str) else k: safe_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [safe_json(v) for v in obj]
    return obj


def lsp_message(message: dict[str, Any]) -> dict[str, Any]:
    """One outgoing JSON-RPC message (plain JSON), redacted for the wire."""
    if message.get("method") == APPLY_EDIT and isinstance(message.get("params"), dict):
        params = message["params"]
        out = {k: safe_json(v) for k, v in message.items() if k != "params"}
        out["params"] = {k: (v if k == "edit" else safe_json(v)) for k, v in params.items()}
        return out
    return {k: safe_json(v) for k, v in message.items()}


def lsp_body(body: str) -> str:
    """One serialised outgoing JSON-RPC message, redacted; returned unchanged (no parsing, no
    copy) when no string in it could need redaction (`k2lsp.redact.may_change_json`)."""
    if not may_change_json(body):
        return body
    message = json.loads(body)
    safe = lsp_message(message) if isinstance(message, dict) else safe_json(message)
    return json.dumps(safe)


class SafeStream:
    """A text stream whose every write is redacted (terminal output of the CLI)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        """Write `text` redacted; returns the length of `text` (as io does)."""
        self.stream.write(safe_text(text))
        return len(text)

    def flush(self) -> None:
        """Flush the wrapped stream."""
        self.stream.flush()

    def isatty(self) -> bool:
        """Whether the wrapped stream is a terminal (colours)."""
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose output (message, arguments, tracebacks) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, redacted."""
        return safe_text(super().format(record))


def redact_log_handlers(logger: logging.Logger | None = None) -> None:
    """Make every handler of `logger` (default: the root logger) redact its output."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        fmt = handler.formatter
        handler.setFormatter(
            RedactingFormatter(fmt._fmt if fmt else None, fmt.datefmt if fmt else None)
        )
