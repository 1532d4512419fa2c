"""Typed errors shared by every room; each maps to a run outcome and says what to do next."""

from __future__ import annotations

from typing import Any

from k2lsp.agent.events import Outcome


class K2lspError(Exception):
    """Base of all k2lsp errors that a user may see; `str()` is the readable message."""

    outcome: Outcome = Outcome.USAGE_ERROR


class UsageError(K2lspError):
    """Bad configuration, flags or arguments (exit 2)."""

    outcome = Outcome.USAGE_ERROR


class ProviderError(K2lspError):
    """The model host refused or failed in a way retries cannot fix (exit 3)."""

    outcome = Outcome.PROVIDER_ERROR

    def __init__(self, message: str, *, status: int | None = None, kind: str = "provider") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        # Usage (k2lsp.model.types.Usage) of the failed attempts behind this error: each
        # counts toward the run's budgets.
        self.attempt_usage: list[Any] = []


class AuthError(ProviderError):
    """401/403: the key is missing, wrong or lacks permission."""


class QuotaExhausted(ProviderError):
    """429 exceeded_current_quota_error: no balance left; retrying cannot help."""


class ModelNotFound(ProviderError):
    """404: the model id is unknown to the host; carries what the host offers."""

    def __init__(self, message: str, *, available: list[str] | None = None) -> None:
        super().__init__(message, status=404, kind="model_not_found")
        self.available = available or []


class ContextOverflow(ProviderError):
    """400: the prompt does not fit the context; the loop compacts and retries once.

    `prompt_tokens` is the prompt size the host counted, when its error says (llama.cpp,
    vLLM, SGLang and LM Studio do): estimates are recalibrated from it before compacting.
    """

    prompt_tokens: int | None = None


class HistoryRejected(ProviderError):
    """The host cannot parse the conversation itself (llama.cpp's 500 "Failed to parse tool
    call arguments as JSON"): the same request can never succeed, so it is never retried
    unchanged."""


class RetryDelayTooLong(ProviderError):
    """The host asked to wait longer (Retry-After) than `max_retry_after_s` allows."""

    def __init__(self, message: str, *, delay_s: float, status: int | None = None) -> None:
        super().__init__(message, status=status, kind="retry_delay")
        self.delay_s = delay_s


class MalformedReply(ProviderError):
    """The model kept answering in a shape we cannot use, after bounded retries."""


class Cancelled(K2lspError):
    """The run was cancelled from outside (Ctrl-C, editor cancel); exit 130."""

    outcome = Outcome.CANCELLED


class BudgetExhausted(K2lspError):
    """A step, token, cost or time budget ran out (exit 4)."""

    outcome = Outcome.BUDGET_EXHAUSTED


class EditConflict(K2lspError):
    """The user's files moved on and the run's changes could not be merged (exit 5)."""

    outcome = Outcome.EDIT_CONFLICT


class SandboxUnavailable(K2lspError):
    """No sandbox backend could be used and none was explicitly waived (exit 6)."""

    outcome = Outcome.SANDBOX_UNAVAILABLE


class PathError(K2lspError):
    """A path escapes the workspace or names something that cannot be used."""
