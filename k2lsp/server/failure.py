"""How a failure reaches the user: once, in words, with what to do next.

- A command the editor sent and the server refused (bad arguments, no folder, nothing to undo)
  is answered with a JSON-RPC error whose message is the plain sentence (`K2: the question is
  empty`): every client shows a failed request, so the server does not show it again, and no
  Python class name or traceback reaches the editor.
- A run that fails after it started (the model host refused the key, the host is down, no
  sandbox) is shown with `window/showMessage` of type Error, once, naming the host URL it
  called (never the key) and the fix.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from k2lsp.redact import redact
from k2lsp.redact.url import host_url

REQUEST_FAILED = -32803  # LSP 3.17 ErrorCodes.RequestFailed
_ERROR_OUTCOMES = ("provider_error", "usage_error", "sandbox_unavailable")
_WARNING_OUTCOMES = ("budget_exhausted", "edit_conflict", "tests_failed")


class CommandFailed(JsonRpcException):
    """A refused `workspace/executeCommand`: the message is what the user reads."""

    CODE = REQUEST_FAILED


def command_error(exc: Exception) -> CommandFailed:
    """The JSON-RPC error for a domain error raised while handling a command."""
    text = redact(str(exc)).strip() or "the command failed"
    return CommandFailed(
        code=REQUEST_FAILED, message=text if text.startswith("K2") else f"K2: {text}"
    )


def run_failure(outcome: str, summary: str, base_url: str) -> tuple[types.MessageType, str]:
    """(message type, text) for a run that ended without changes, `outcome` not success."""
    text = " ".join(summary.split()) or f"the run ended ({outcome})"
    if outcome == "provider_error":
        url = host_url(base_url) if base_url else "(no base URL set)"
        text = (
            f"K2: {redact(text)} Host called: {url} (set by `baseUrl` or K2LSP_BASE_URL; "
            '`:checkhealth k2lsp`, "K2: Check setup" or `k2lsp doctor` test it).'
        )
        return types.MessageType.Error, text
    kind = (
        types.MessageType.Error
        if outcome in _ERROR_OUTCOMES
        else types.MessageType.Warning
        if outcome in _WARNING_OUTCOMES
        else types.MessageType.Info
    )
    return kind, text if text.startswith("K2") else f"K2: {text}"


def edit_label(title: str) -> str:
    """The `workspace/applyEdit` label: one `K2:` prefix, whatever the title carried."""
    rest = title.strip()
    while rest[:3].upper() == "K2:":
        rest = rest[3:].strip()
    return f"K2: {rest}" if rest else "K2"


def full_text(run: Any, result: Any) -> str:
    """Where the whole text of a cut message is: the transcript, else the trajectory file."""
    stream = getattr(run, "stream", None)
    where = getattr(stream, "transcript", None) or getattr(result, "trajectory", None)
    return str(where) if where else "the run's trajectory (`k2lsp` state folder)"


def quiet_refusals(record: object) -> bool:
    """A logging filter: pygls logs every failed request with its traceback; a refused command
    is an answer, not a crash, so its record is dropped."""
    exc = getattr(record, "exc_info", None)
    return not (exc and isinstance(exc[1], CommandFailed))
