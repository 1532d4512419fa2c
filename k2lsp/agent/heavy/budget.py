"""One budget for N candidates: a pool of steps, tokens, dollars and wall time that every
candidate's loop draws from, so heavy ×N never spends more than the limits the user set.

Each candidate gets a `CandidateBudget`: the `Budget` interface the agent loop already uses,
whose own counters (steps, usage) are the candidate's and whose checks are against the pool.
The loop runs every candidate on one event loop; tools may record from worker threads, so
the pool's counters are updated under a lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from k2lsp.agent.budgets import (
    Budget,
    check_limits,
    steps_exhausted,
    time_exhausted,
)
from k2lsp.errors import BudgetExhausted
from k2lsp.model.types import Usage

# How heavy-mode budget messages begin and what their counts cover.
HEAVY = "heavy "
OVER_ALL = " over all candidates"


@dataclass
class Pool(Budget):
    """The shared limits (None = unlimited) and what all candidates used together: a budget
    whose counters candidates running in parallel change under its lock, and whose messages
    speak of all candidates."""

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, usage: Usage) -> None:
        """Count one request's usage (a candidate's or the judge's)."""
        with self.lock:
            self.used += usage

    def take_step(self) -> int:
        """Count one step of some candidate; BudgetExhausted when the pool has none left."""
        with self.lock:
            if self.steps >= self.max_steps:
                raise steps_exhausted(
                    self.steps,
                    self.max_steps,
                    label=HEAVY,
                    scope=OVER_ALL,
                    advice="use fewer candidates",
                )
            self.steps += 1
            return self.steps

    def check(self) -> None:
        """Raise BudgetExhausted when the shared token, cost or time budget is used up."""
        check_limits(self, label=HEAVY, scope=OVER_ALL)

    def time_exhausted(self) -> BudgetExhausted:
        """The error of a heavy run that hit its wall-time limit."""
        return time_exhausted(self.elapsed(), self.timeout_s, label=HEAVY)

    def candidate(self) -> CandidateBudget:
        """A budget view for one candidate's loop."""
        return CandidateBudget(max_steps=self.max_steps, pool=self)


@dataclass
class CandidateBudget(Budget):
    """One candidate's counters, checked against the shared pool."""

    pool: Pool = field(default_factory=Pool)

    def __post_init__(self) -> None:
        self.started = self.pool.started
        self.timeout_s = self.pool.timeout_s
        self.max_tokens = self.pool.max_tokens
        self.max_usd = self.pool.max_usd

    def add_usage(self, usage: Usage) -> None:
        """Count a request's usage for this candidate and for the pool."""
        self.used += usage
        self.pool.add(usage)

    def begin_step(self) -> int:
        """Check the pool, take one of its steps, count it here; the candidate's step number."""
        self.pool.check()
        self.pool.take_step()
        self.steps += 1
        return self.steps

    def check(self) -> None:
        """The pool's token, cost and time limits."""
        self.pool.check()

    def remaining_time(self) -> float | None:
        """The pool's wall time left."""
        return self.pool.remaining_time()

    def time_exhausted(self) -> BudgetExhausted:
        """The pool's time error."""
        return self.pool.time_exhausted()
