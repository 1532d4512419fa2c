"""The one event schema every front-end renders (see docs/architecture.md).

Each event is a flat JSON object: ``{"type", "run_id", "seq", "ts", ...fields}``. The headless
``--json`` output is exactly this stream, one object per line.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Outcome and EXIT_CODES live in k2lsp.errors (the floor every room may import).


# Event types and the fields each carries (besides run_id, seq, ts).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "run_started": ("task", "model", "provider", "repo", "mode"),
    "reasoning": ("text",),
    "content": ("text",),
    "tool_call": ("id", "name", "args"),
    "tool_result": ("id", "name", "ok", "summary", "text"),
    "edit": ("path", "diff"),
    "test_result": ("passed", "failed", "errors", "skipped", "command", "duration"),
    "usage": (
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "cost_usd",
        "total_prompt_tokens",
        "total_cached_tokens",
        "total_completion_tokens",
        "total_cost_usd",
        "estimated",
        "attempt_failed",
    ),
    "status": ("step", "max_steps", "phase", "message"),
    "run_finished": ("outcome", "exit_code", "summary"),
}


@dataclass(frozen=True)
class Event:
    """One event of a run."""

    type: str
    run_id: str
    seq: int
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON form: type, run_id, seq, ts, then the fields."""
        return {
            "type": self.type,
            "run_id": self.run_id,
            "seq": self.seq,
            "ts": self.ts,
            **self.data,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Event:
        """Inverse of `to_dict`."""
        rest = {k: v for k, v in obj.items() if k not in ("type", "run_id", "seq", "ts")}
        return cls(type=obj["type"], run_id=obj["run_id"], seq=obj["seq"], data=rest, ts=obj["ts"])


EventSink = Callable[[Event], None]


class Emitter:
    """Stamps events with the run id and a monotonic seq and fans them out to sinks.

    Thread-safe: tools running in worker threads may emit too.
    """

    def __init__(self, run_id: str, sinks: list[EventSink] | None = None) -> None:
        self.run_id = run_id
        self.sinks: list[EventSink] = list(sinks or [])
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def add_sink(self, sink: EventSink) -> None:
        """Register another consumer of this run's events."""
        self.sinks.append(sink)

    def emit(self, type_: str, **fields: Any) -> Event:
        """Build the event of `type_` and deliver it to every sink; unknown types are bugs."""
        if type_ not in EVENT_FIELDS:
            raise ValueError(f"unknown event type {type_!r}")
        with self._lock:
            event = Event(type=type_, run_id=self.run_id, seq=next(self._seq), data=fields)
            for sink in self.sinks:
                sink(event)
        return event
