"""The repeated-call guard: the same tool call (name + canonical arguments) made N times in a
row is not executed again; the model is told to change approach instead. If it keeps
repeating, the run stops with `BudgetExhausted`.
"""

from __future__ import annotations

import json
from typing import Any

from k2lsp.errors import BudgetExhausted

DEFAULT_REPEAT_LIMIT = 3


def call_key(name: str, args: Any) -> str:
    """A canonical key for a call: the name plus its arguments as sorted, compact JSON."""
    try:
        canon = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        canon = repr(args)
    return f"{name}\x00{canon}"


class RepeatGuard:
    """Counts identical consecutive calls; `check` says whether a call may run."""

    def __init__(self, limit: int = DEFAULT_REPEAT_LIMIT) -> None:
        self.limit = max(2, limit)
        self._last: str | None = None
        self._count = 0
        self._blocked = 0

    def check(self, name: str, args: Any) -> str | None:
        """None if the call may run, else the message to send the model instead of a result.

        Raises BudgetExhausted once the model has been blocked `limit` times in a row.
        """
        key = call_key(name, args)
        if key == self._last:
            self._count += 1
        else:
            self._last, self._count, self._blocked = key, 1, 0
        if self._count < self.limit:
            self._blocked = 0
            return None
        self._blocked += 1
        if self._blocked >= self.limit:
            raise BudgetExhausted(
                f"the model repeated the same {name} call {self._count} times in a row "
                "despite being told to change approach; rephrase the task or try again"
            )
        return (
            f"Error: you have called {name} with exactly these arguments {self._count} times "
            "in a row; it was NOT run again because the result would be the same. Change "
            "approach: read a different part of the code, use another tool, or adjust the "
            "arguments."
        )
