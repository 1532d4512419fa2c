"""Run budgets: steps, total tokens, dollars and wall time.

`Budget.check()` raises `BudgetExhausted` with a message that says which limit ran out and
which flag raises it. Token and cost totals are the running sums of every request's usage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from k2lsp.errors import BudgetExhausted
from k2lsp.model.types import Usage

DEFAULT_MAX_STEPS = 300
# Editor (language server) runs have no one watching a terminal: unless the user set a wall
# time, they stop after 30 minutes (`budget_exhausted`).
EDITOR_DEFAULT_TIMEOUT_S = 1800.0


def with_editor_defaults(settings: object) -> object:
    """`settings` with the editor default wall time when none is configured (in place)."""
    if getattr(settings, "timeout_s", None) is None:
        settings.timeout_s = EDITOR_DEFAULT_TIMEOUT_S  # type: ignore[attr-defined]
    return settings


@dataclass
class Budget:
    """Limits of one run and what has been used so far (None = unlimited)."""

    max_steps: int = DEFAULT_MAX_STEPS
    max_tokens: int | None = None
    max_usd: float | None = None
    timeout_s: float | None = None
    steps: int = 0
    used: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def from_settings(cls, settings: object) -> Budget:
        """A budget from `Settings` (max_steps, max_tokens, budget_usd, timeout_s)."""
        steps = getattr(settings, "max_steps", None) or DEFAULT_MAX_STEPS
        return cls(
            max_steps=int(steps),
            max_tokens=getattr(settings, "max_tokens", None),
            max_usd=getattr(settings, "budget_usd", None),
            timeout_s=getattr(settings, "timeout_s", None),
        )

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens over every request so far."""
        return self.used.prompt_tokens + self.used.completion_tokens

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def remaining_time(self) -> float | None:
        """Seconds of wall time left, or None when there is no time limit."""
        if self.timeout_s is None:
            return None
        return max(0.0, self.timeout_s - self.elapsed())

    def add_usage(self, usage: Usage) -> None:
        """Add one request's usage to the running totals."""
        self.used += usage

    def begin_step(self) -> int:
        """Check every limit, then count a new step and return its number (1-based)."""
        if self.steps >= self.max_steps:
            raise BudgetExhausted(
                f"step budget used up: {self.steps} of {self.max_steps} steps; "
                "raise it with --max-steps or narrow the task"
            )
        self.check()
        self.steps += 1
        return self.steps

    def check(self) -> None:
        """Raise BudgetExhausted if the token, cost or time budget is used up."""
        if self.max_tokens is not None and self.total_tokens >= self.max_tokens:
            raise BudgetExhausted(
                f"token budget used up: {self.total_tokens:,} of {self.max_tokens:,} tokens; "
                "raise it with --max-tokens"
            )
        if self.max_usd is not None and self.used.cost_usd >= self.max_usd:
            raise BudgetExhausted(
                f"cost budget used up: ${self.used.cost_usd:.4f} of ${self.max_usd:.2f}; "
                "raise it with --budget-usd"
            )
        if self.timeout_s is not None and self.elapsed() >= self.timeout_s:
            raise self.time_exhausted()

    def time_exhausted(self) -> BudgetExhausted:
        """The error for a run that hit its wall-time limit."""
        return BudgetExhausted(
            f"time budget used up: {self.elapsed():.0f} s of {self.timeout_s:.0f} s; "
            "raise it with --timeout"
        )
