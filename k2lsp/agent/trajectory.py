"""Trajectory recording: one JSONL file per run with every event (the `--json` stream, line for
line) plus every request and response, all redacted with `k2lsp.redact`.

Request lines are incremental so a long run does not write its history quadratically:
``{"type": "request", "step", "base", "messages", "tools"}`` means "the first `base` messages
of the previous request, followed by `messages`"; `tools` is written on the first request and
whenever it changes (else null). After a compaction `base` is 0 and the whole list is written.

Streamed deltas are flushed in batches (see `Trajectory.write`): a crash loses at most the
last `FLUSH_DELTAS` deltas or `FLUSH_SECONDS` of them; every other record is flushed at once.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Any

from k2lsp.agent.events import DELTA_TYPES, Event
from k2lsp.redact.cache import redact_tree

_json_str = json.encoder.encode_basestring  # a str as a JSON string (C), like ensure_ascii=False
FLUSH_DELTAS = 64  # streamed deltas written between two flushes, at most
FLUSH_SECONDS = 0.5  # and at most this long after the oldest unflushed one


def trajectory_path(state_dir: Path | str | None, run_id: str) -> Path:
    """Where the trajectory of `run_id` goes: `<state_dir>/trajectories/<run_id>.jsonl`."""
    from k2lsp.runs.runcopy import default_state_dir

    return default_state_dir(state_dir) / "trajectories" / f"{run_id}.jsonl"


class Trajectory:
    """Appends redacted records to a JSONL file; safe to call from worker threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._prev: list[dict[str, Any]] = []
        self._prev_list: list[dict[str, Any]] | None = None  # the list last recorded, and
        self._prev_len = 0  # its length then: an append-only history needs no comparison
        self._prev_tools: list[dict[str, Any]] | None = None
        self._waiting = 0  # delta lines written but not yet flushed
        self._oldest = 0.0  # when the oldest of them was written (monotonic)

    def write(self, record: dict[str, Any], *, redacted: bool = False, batch: bool = False) -> None:
        """Redact (unless already `redacted`) and append one record.

        Every record is flushed to the OS at once, except `batch` ones (streamed deltas): they
        are flushed together, by the next other record or by the delta that makes
        `FLUSH_DELTAS` waiting or comes `FLUSH_SECONDS` after the oldest waiting one. A crash
        loses at most that last batch of deltas (fewer than `FLUSH_DELTAS`; their text is also
        in the step's `response` record once it is written), never another record."""
        safe = record if redacted else redact_tree(record)
        self._write_line(json.dumps(safe, ensure_ascii=False, separators=(",", ":")), batch=batch)

    def _write_line(self, line: str, *, batch: bool) -> None:
        with self._lock:
            if self._file is None:
                return
            self._file.write(line + "\n")
            if batch:
                now = time.monotonic()
                if not self._waiting:
                    self._oldest = now
                self._waiting += 1
                if self._waiting < FLUSH_DELTAS and now - self._oldest < FLUSH_SECONDS:
                    return
            self._file.flush()
            self._waiting = 0

    def event(self, event: Event) -> None:
        """Record an event (an `EventSink`)."""
        self.write(event.to_dict(), batch=event.type in DELTA_TYPES)

    def event_safe(self, event: Event) -> None:
        """Record an event whose fields are already redacted (an `EventSink`)."""
        if event.type in DELTA_TYPES and len(event.data) == 1 and "text" in event.data:
            self._write_line(_delta_line(event), batch=True)  # the hot path: one per delta
        else:
            self.write(event.to_dict(), redacted=True, batch=event.type in DELTA_TYPES)

    def request(
        self, run_id: str, step: int, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> None:
        """Record the request of `step` as a delta against the previous one."""
        grown = messages is self._prev_list and len(messages) >= self._prev_len
        # the same list, only appended to since (the loop's history): no comparison needed
        base = self._prev_len if grown else _common_prefix(self._prev, messages)
        tools_out = None if tools == self._prev_tools else tools
        self.write(
            {
                "type": "request",
                "run_id": run_id,
                "step": step,
                "ts": time.time(),
                "base": base,
                "messages": messages[base:],
                "tools": tools_out,
            }
        )
        if grown:
            self._prev.extend(messages[base:])
        else:
            self._prev = list(messages)
        self._prev_list, self._prev_len = messages, len(messages)
        self._prev_tools = tools

    def response(
        self,
        run_id: str,
        step: int,
        message: dict[str, Any],
        usage: dict[str, Any],
        finish_reason: str | None,
    ) -> None:
        """Record the full assistant reply of `step`."""
        self.write(
            {
                "type": "response",
                "run_id": run_id,
                "step": step,
                "ts": time.time(),
                "message": message,
                "usage": usage,
                "finish_reason": finish_reason,
            }
        )

    def close(self) -> None:
        """Close the file (further writes are dropped)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _delta_line(event: Event) -> str:
    """`json.dumps(event.to_dict())` of a text delta, without building the dict."""
    text = _json_str(str(event.data["text"]))
    return (
        f'{{"type":"{event.type}","run_id":{_json_str(event.run_id)},"seq":{int(event.seq)},'
        f'"ts":{float(event.ts)!r},"text":{text}}}'
    )


def _common_prefix(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> int:
    n = 0
    for a, b in zip(old, new, strict=False):
        if a is not b and a != b:
            break
        n += 1
    return n


def replay_requests(path: Path) -> list[list[dict[str, Any]]]:
    """Rebuild the full message list of every recorded request (for tests and tooling)."""
    out: list[list[dict[str, Any]]] = []
    prev: list[dict[str, Any]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("type") == "request":
            prev = prev[: rec["base"]] + rec["messages"]
            out.append(prev)
    return out
