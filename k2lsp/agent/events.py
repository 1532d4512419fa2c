"""The one event schema every front-end renders (see docs/architecture.md).

Each event is a flat JSON object: ``{"type", "run_id", "seq", "ts", ...fields}``. The headless
``--json`` output is exactly this stream, one object per line.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from k2lsp.errors import Outcome

# Outcome and EXIT_CODES live in k2lsp.errors (the floor every room may import).


# --- the typed payloads --------------------------------------------------------------------
# One class per event type: its fields (besides the envelope run_id, seq, ts, type) with their
# types. `k2lsp.agent.event_schema` turns these classes into the JSON schema
# (docs/events.schema.json), the TypeScript types (editors/vscode/src/events.d.ts) and the Lua
# field table (editors/nvim/lua/k2lsp/events.lua); tests fail when any of them drifts.
# Adding a field is one line in its class; adding an event type is one class plus one line in
# `EVENT_TYPES`; adding an outcome is one line in `Outcome` (and its exit code).
# Fields with a default are optional (not every producer sends them); consumers ignore fields
# they do not know.


@dataclass(frozen=True)
class RunStartedEvent:
    """The run began (always the first event, seq 1)."""

    task: str
    model: str
    provider: str
    repo: str
    mode: str


@dataclass(frozen=True)
class ReasoningEvent:
    """A piece of the model's reasoning (a streamed delta, already redacted)."""

    text: str


@dataclass(frozen=True)
class ContentEvent:
    """A piece of the model's answer text (a streamed delta, already redacted)."""

    text: str


@dataclass(frozen=True)
class ToolCallEvent:
    """The model called a tool (`args` as parsed, or the raw text when it was not JSON)."""

    id: str
    name: str
    args: Any


@dataclass(frozen=True)
class ToolResultEvent:
    """A tool finished; `text` is what the model sees."""

    id: str
    name: str
    ok: bool
    summary: str
    text: str


@dataclass(frozen=True)
class EditEvent:
    """A file of the run copy changed (`diff`: unified diff of the change)."""

    path: str
    diff: str


@dataclass(frozen=True)
class TestResultEvent:
    """A test run finished (`status`: passed|failed|error|...; `ok`: credited as passing)."""

    __test__ = False  # not a pytest test class

    passed: int
    failed: int
    errors: int
    skipped: int
    command: str
    duration: float
    status: str = ""
    total: int = 0
    ok: bool = False


@dataclass(frozen=True)
class UsageEvent:
    """Tokens and cost of one model request, and the run's totals so far."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    cost_usd: float
    total_prompt_tokens: int
    total_cached_tokens: int
    total_completion_tokens: int
    total_cost_usd: float
    estimated: bool  # the counts are k2lsp's estimate (the host sent none)
    attempt_failed: bool  # the attempt's reply was thrown away (retried or failed)


@dataclass(frozen=True)
class StatusEvent:
    """Progress of the run (`step`/`max_steps` null outside the step loop)."""

    step: int | None
    max_steps: int | None
    phase: str
    message: str
    evidence: dict[str, Any] | None = None  # phase test_evidence: the red->green record


@dataclass(frozen=True)
class RunFinishedEvent:
    """The run ended (always the last event)."""

    outcome: Outcome
    exit_code: int
    summary: str


@dataclass(frozen=True)
class HeavyStartedEvent:
    """Heavy mode began N candidate runs (their events carry `candidate_ids` as run_id)."""

    candidates: int
    candidate_ids: list[str]
    temperatures: list[float]
    temperature_note: str  # why these temperatures (fixed by the host, spread, set by the user)
    plans: list[str]  # each candidate's opening plan (the only part of its prompt that differs)
    at_once: int  # how many sandboxes fit at once; the others queue
    admission: str
    prefix_chars: int  # characters every candidate's first request shares from the start
    first_request_chars: int  # length of the shortest first request


@dataclass(frozen=True)
class CandidateFinishedEvent:
    """One candidate ended and k2lsp checked it (`evidence`: the tests k2lsp ran itself)."""

    candidate: str  # c1, c2, ...
    candidate_run_id: str
    outcome: str
    summary: str
    steps: int
    cost_usd: float
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    evidence: dict[str, Any] | None = None


@dataclass(frozen=True)
class JudgeVerdictEvent:
    """The K2 judge compared candidate `a` (shown first) with `b`; `winner` a label or tie."""

    a: str
    b: str
    winner: str
    reason: str


@dataclass(frozen=True)
class HeavySelectedEvent:
    """The heavy run's choice, why, and every candidate's record (failing ones too)."""

    winner: str | None
    winner_run_id: str | None
    explanation: str
    candidates: list[Any]  # Candidate.record() of each: outcome, evidence, cost, tokens
    excluded: dict[str, Any]  # candidate -> why it was left out
    finalists: list[str]
    ties: list[str]
    disagreements: list[str]
    cache_ratio: float  # cached / prompt tokens over every request of the heavy run
    cost_usd: float
    judge: dict[str, Any] | None = None


EVENT_TYPES: dict[str, type] = {
    "run_started": RunStartedEvent,
    "reasoning": ReasoningEvent,
    "content": ContentEvent,
    "tool_call": ToolCallEvent,
    "tool_result": ToolResultEvent,
    "edit": EditEvent,
    "test_result": TestResultEvent,
    "usage": UsageEvent,
    "status": StatusEvent,
    "run_finished": RunFinishedEvent,
    "heavy_started": HeavyStartedEvent,
    "candidate_finished": CandidateFinishedEvent,
    "judge_verdict": JudgeVerdictEvent,
    "heavy_selected": HeavySelectedEvent,
}

# Event types and the fields each carries (besides run_id, seq, ts), from the classes above.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    name: tuple(f.name for f in fields(cls)) for name, cls in EVENT_TYPES.items()
}

# Streamed text deltas: redacted across delta boundaries where they are made (the loop's
# `StreamRedactor`), so the run's redacting sink passes them through untouched.
DELTA_TYPES: frozenset[str] = frozenset({"reasoning", "content"})


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
