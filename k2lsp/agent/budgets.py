"""Run budgets: steps, total tokens, dollars and wall time.

`Budget.check()` raises `BudgetExhausted` with a message that says which limit ran out and
which flag raises it. Token and cost totals are the running sums of every request's usage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, Self

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


class Limits(Protocol):
    """What `check_limits` reads: a run's (or heavy pool's) limits and usage so far."""

    max_tokens: int | None
    max_usd: float | None
    timeout_s: float | None
    used: Usage

    @property
    def total_tokens(self) -> int: ...

    def elapsed(self) -> float: ...

    def time_exhausted(self) -> BudgetExhausted: ...


def steps_exhausted(
    steps: int, max_steps: int, *, label: str, scope: str, advice: str
) -> BudgetExhausted:
    """The error of a step budget used up; `label` prefixes it, `scope` follows the counts."""
    return BudgetExhausted(
        f"{label}step budget used up: {steps} of {max_steps} steps{scope}; "
        f"raise it with --max-steps or {advice}"
    )


def check_limits(limits: Limits, *, label: str = "", scope: str = "") -> None:
    """Raise BudgetExhausted when the token, cost or time limit of `limits` is used up.

    `label` prefixes each message ("heavy "), `scope` follows its counts (" over all
    candidates"); the time error is `limits.time_exhausted()`.
    """
    if limits.max_tokens is not None and limits.total_tokens >= limits.max_tokens:
        raise BudgetExhausted(
            f"{label}token budget used up: {limits.total_tokens:,} of {limits.max_tokens:,} "
            f"tokens{scope}; raise it with --max-tokens"
        )
    if limits.max_usd is not None and limits.used.cost_usd >= limits.max_usd:
        raise BudgetExhausted(
            f"{label}cost budget used up: ${limits.used.cost_usd:.4f} of ${limits.max_usd:.2f}"
            f"{scope}; raise it with --budget-usd"
        )
    if limits.timeout_s is not None and limits.elapsed() >= limits.timeout_s:
        raise limits.time_exhausted()


def time_exhausted(elapsed: float, timeout_s: float | None, *, label: str = "") -> BudgetExhausted:
    """The error of a run (or heavy pool) that hit its wall-time limit."""
    return BudgetExhausted(
        f"{label}time budget used up: {elapsed:.0f} s of {timeout_s:.0f} s; raise it with --timeout"
    )


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
    def from_settings(cls, settings: object) -> Self:
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
            raise steps_exhausted(
                self.steps, self.max_steps, label="", scope="", advice="narrow the task"
            )
        self.check()
        self.steps += 1
        return self.steps

    def check(self) -> None:
        """Raise BudgetExhausted if the token, cost or time budget is used up."""
        check_limits(self)

    def time_exhausted(self) -> BudgetExhausted:
        """The error for a run that hit its wall-time limit."""
        return time_exhausted(self.elapsed(), self.timeout_s)
