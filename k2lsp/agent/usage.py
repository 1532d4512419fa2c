"""Usage accounting of one run: every attempt's tokens count toward the budgets.

Each successful reply and each failed attempt (retried, or the last one of a failed call) adds
its usage to the budget and emits a `usage` event; `estimated` says the counts are k2lsp's
estimate (the host sent none), `attempt_failed` that the attempt's reply was thrown away.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from k2lsp.agent.budgets import Budget
from k2lsp.agent.events import Emitter
from k2lsp.model.types import Usage

_COUNTS = ("prompt_tokens", "cached_tokens", "completion_tokens", "cost_usd")


def record_usage(
    emitter: Emitter, budget: Budget, usage: Usage, *, attempt_failed: bool = False
) -> None:
    """Add `usage` to the budget and emit its `usage` event with the running totals."""
    budget.add_usage(usage)
    emit_usage(emitter, usage, budget.used, attempt_failed=attempt_failed)


def emit_usage(
    emitter: Emitter, usage: Usage, total: Usage, *, attempt_failed: bool = False
) -> None:
    """Emit the `usage` event of one attempt with the running totals `total`."""
    counts = asdict(usage)
    totals = asdict(total)
    emitter.emit(
        "usage",
        **{k: counts[k] for k in _COUNTS},
        **{f"total_{k}": totals[k] for k in _COUNTS},
        estimated=usage.estimated,
        attempt_failed=attempt_failed,
    )


def record_failed(emitter: Emitter, budget: Budget, usages: list[Any]) -> None:
    """Record the usage of failed attempts (a list of `Usage`)."""
    for usage in usages:
        if isinstance(usage, Usage):
            record_usage(emitter, budget, usage, attempt_failed=True)
