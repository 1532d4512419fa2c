"""The repeated-call guard: the same tool call (name + canonical arguments) made N times in a
row, or a cycle of 2-4 calls made N times in turn (A B C A B C A B C), is not executed again;
the model is told to change approach instead. If it keeps repeating, the run stops with
`BudgetExhausted`. Cycles are found in a window over the last `WINDOW` calls.
"""

from __future__ import annotations

import json
from typing import Any

from k2lsp.errors import BudgetExhausted

DEFAULT_REPEAT_LIMIT = 3
MAX_CYCLE = 4  # longest cycle of calls detected
WINDOW = 12  # recent calls kept: MAX_CYCLE * DEFAULT_REPEAT_LIMIT


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
        self._recent: list[str] = []

    def check(self, name: str, args: Any) -> str | None:
        """None if the call may run, else the message to send the model instead of a result.

        Raises BudgetExhausted once the model has been blocked `limit` times in a row.
        """
        key = call_key(name, args)
        self._recent = [*self._recent, key][-max(WINDOW, MAX_CYCLE * self.limit) :]
        if key == self._last:
            self._count += 1
        else:
            self._last, self._count = key, 1
        cycle = self._cycle()
        if self._count < self.limit and cycle is None:
            self._blocked = 0
            return None
        self._blocked += 1
        if self._blocked >= self.limit:
            what = (
                f"the same {name} call {self._count} times in a row"
                if cycle is None
                else f"a cycle of {len(cycle)} calls ({', '.join(cycle)}) {self.limit} times"
            )
            raise BudgetExhausted(
                f"the model repeated {what} despite being told to change approach; rephrase "
                "the task or try again"
            )
        if cycle is None:
            return (
                f"Error: you have called {name} with exactly these arguments {self._count} "
                "times in a row; it was NOT run again because the result would be the same. "
                "Change approach: read a different part of the code, use another tool, or "
                "adjust the arguments."
            )
        return (
            f"Error: this {name} call was NOT run: your last {len(cycle) * self.limit} calls "
            f"repeat the same {len(cycle)} calls ({', '.join(cycle)}) {self.limit} times in "
            "turn with the same arguments, so their results would not change. Change "
            "approach: act on what you already read (edit, run the tests) or look somewhere "
            "else."
        )

    def _cycle(self) -> list[str] | None:
        """The tool names of a cycle of 2..MAX_CYCLE calls repeated `limit` times at the end."""
        recent = self._recent
        for size in range(2, MAX_CYCLE + 1):
            span = size * self.limit
            if len(recent) < span:
                break
            tail = recent[-span:]
            pattern = tail[:size]
            if len(set(pattern)) == size and tail == pattern * self.limit:
                return [k.split("\x00", 1)[0] for k in pattern]
        return None
