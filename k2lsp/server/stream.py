"""Render one run's events to the editor: coalesced `k2lsp/stream` batches (opt-in), `$/progress`,
`window/logMessage` lines and a live Markdown transcript.

`RunStream.sink` may be called from any thread; everything sent to the client is sent from the
event loop, at most once per `interval` seconds per run, and nothing is lost: consecutive
reasoning/content deltas are merged, every other event is passed through in `seq` order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from k2lsp.agent.events import Event
from k2lsp.redact.boundary import safe_text
from k2lsp.server import protocol
from k2lsp.server.progress import MESSAGE_INTERVAL_S, Limits, Progress

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)
_MERGEABLE = ("reasoning", "content")
_LINE_FLUSH_CHARS = 300


def short_task(task: str, limit: int = 120) -> str:
    """The task on one line, cut to `limit` characters."""
    line = " ".join(task.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def coalesce(events: list[Event]) -> list[Event]:
    """Merge consecutive reasoning (or content) deltas; keep everything else as is.

    A run of deltas becomes one event (the seq and fields of its last delta, the ts of its
    first, the texts joined once)."""
    out: list[Event] = []
    i, n = 0, len(events)
    while i < n:
        ev = events[i]
        j = i + 1
        if ev.type in _MERGEABLE:
            while j < n and events[j].type == ev.type:
                j += 1
        if j - i == 1:
            out.append(ev)
        else:
            last = events[j - 1]
            text = "".join(str(e.data.get("text", "")) for e in events[i:j])
            out.append(Event(ev.type, ev.run_id, last.seq, {**last.data, "text": text}, ev.ts))
        i = j
    return out


class RunStream:
    """Fan-out of one run's events to the editor's channels."""

    def __init__(
        self,
        ls: LanguageServer,
        run_id: str,
        *,
        title: str,
        notify: bool,
        log_reasoning: bool = True,
        transcript: Path | None = None,
        interval: float = 0.05,
        observers: list[Callable[[Event], None]] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.ls = ls
        self.run_id = run_id
        self.title = title
        self.notify = notify
        self.log_reasoning = log_reasoning
        self.transcript = transcript
        self.interval = interval
        self.observers = list(observers or [])
        self.progress_token: str | None = None
        self.limits = limits or Limits()
        self.progress: Progress | None = None
        self.last_seq = 0  # highest seq received
        self._loop = asyncio.get_running_loop()
        self._pending: list[Event] = []
        self._lock = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._scheduled = False  # a flush is armed or about to be (guarded by _lock)
        self._last_flush = 0.0
        self._partial: dict[str, str] = {"reasoning": "", "content": ""}
        self._last_kind = ""

    # --- lifecycle ------------------------------------------------------------------------
    async def open(self, task: str) -> None:
        """Create the progress bar, start the transcript and show it (when supported)."""
        caps = self.ls.client_capabilities
        window = caps.window if caps else None
        if window is not None and window.work_done_progress:
            token = f"k2lsp-{self.run_id}"
            try:
                await asyncio.wait_for(self.ls.work_done_progress.create_async(token), 5)
                self.progress_token = token
                self.progress = Progress(self.ls, token, self.limits)
                self.ls.work_done_progress.begin(
                    token,
                    types.WorkDoneProgressBegin(
                        title=self.title,
                        cancellable=True,
                        message=short_task(task),
                        percentage=self.progress.percentage(),
                    ),
                )
            except Exception as exc:  # the client may refuse progress; runs go on without it
                log.warning("progress not available: %s", exc)
                self.progress_token = self.progress = None
        if self.progress is None and not self.notify:  # no $/progress: Log messages instead
            self.progress = Progress(self.ls, "", self.limits, MESSAGE_INTERVAL_S, title=self.title)
        if self.transcript is not None:
            self._open_transcript(task, window)

    def _open_transcript(self, task: str, window: Any) -> None:
        assert self.transcript is not None
        try:
            self.transcript.parent.mkdir(parents=True, exist_ok=True)
            self.transcript.write_text(
                safe_text(f"# K2 run {self.run_id}\n\n**{self.title}**: {task}\n"),
                encoding="utf-8",
            )
        except OSError as exc:
            log.warning("transcript disabled: %s", exc)
            self.transcript = None
            return
        if window is not None and window.show_document is not None and window.show_document.support:
            params = types.ShowDocumentParams(uri=self.transcript.as_uri(), take_focus=False)
            self.ls.window_show_document(params)

    def close(self, message: str) -> None:
        """Flush what is left and end the progress bar with `message`."""
        self.flush()
        if self.progress is not None:
            self.progress.end(message)
            self.progress_token = self.progress = None

    # --- intake (any thread) -------------------------------------------------------------
    def sink(self, event: Event) -> None:
        """Accept an event from the run (thread-safe, never blocks on the client).

        The event loop is woken once per batch, not per event: while a flush is scheduled,
        further events only join the pending list (a `run_finished` always wakes it)."""
        now = event.type == "run_finished"
        with self._lock:
            self._pending.append(event)
            self.last_seq = max(self.last_seq, event.seq)
            if self._scheduled and not now:
                return
            self._scheduled = True
        if threading.get_ident() == getattr(self._loop, "_thread_id", None):
            self._arm(now)
        else:
            self._loop.call_soon_threadsafe(self._arm, now)

    def _arm(self, now: bool) -> None:
        if now:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.flush()
            return
        if self._timer is None:
            delay = max(0.0, self._last_flush + self.interval - time.monotonic())
            self._timer = self._loop.call_later(delay, self.flush)

    # --- output (event loop) -------------------------------------------------------------
    def flush(self) -> None:
        """Send everything pending as one batch to every channel."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._lock:
            batch, self._pending = self._pending, []
            self._scheduled = False  # the next event schedules the next flush
        if not batch:
            return
        self._last_flush = time.monotonic()
        batch.sort(key=lambda e: e.seq)
        for ev in batch:
            for observer in self.observers:
                try:
                    observer(ev)
                except Exception:
                    log.exception("event observer failed")
        merged = coalesce(batch)
        if self.notify:
            payload = {"runId": self.run_id, "events": [e.to_dict() for e in merged]}
            self.ls.protocol.notify(protocol.STREAM_NOTIFICATION, payload)
        lines: list[tuple[str, types.MessageType]] = []
        md: list[str] = []
        for ev in merged:
            if self.progress is not None:
                self.progress.track(ev.type, ev.data)
                if ev.type == "tool_call":  # every tool shows, however fast it ran
                    self.progress.report(force=True)
            lines.extend(self._log_lines(ev))
            md.append(self._markdown(ev))
        self._send_log(lines)
        if self.progress is not None:
            self.progress.report()
        self._append_transcript("".join(md))

    def _send_log(self, lines: list[tuple[str, types.MessageType]]) -> None:
        """One window/logMessage per run of same-type lines (fewer messages, same text)."""
        group: list[str] = []
        for i, (text, kind) in enumerate(lines):
            group.append(f"[k2lsp {self.run_id}] {text}")
            if i + 1 == len(lines) or lines[i + 1][1] != kind:
                self.ls.window_log_message(
                    types.LogMessageParams(type=kind, message="\n".join(group))
                )
                group = []

    def _log_lines(self, ev: Event) -> list[tuple[str, types.MessageType]]:
        d = ev.data
        if ev.type in _MERGEABLE:
            if ev.type == "reasoning" and not self.log_reasoning:
                return []
            label = "thinking" if ev.type == "reasoning" else "answer"
            text = self._partial[ev.type] + str(d.get("text", ""))
            *done, rest = text.split("\n")
            if len(rest) > _LINE_FLUSH_CHARS:
                done, rest = [*done, rest], ""
            self._partial[ev.type] = rest
            return [(f"{label}: {line}", types.MessageType.Log) for line in done if line.strip()]
        out = self._drain_partials()
        info = types.MessageType.Info
        if ev.type == "tool_call":
            args = json.dumps(d.get("args"), ensure_ascii=False)[:200]
            out.append((f"tool {d.get('name')} {args}", info))
        elif ev.type == "tool_result":
            out.append((f"  -> {'ok' if d.get('ok') else 'error'}: {d.get('summary', '')}", info))
        elif ev.type == "edit":
            out.append((f"edited {d.get('path')}", info))
        elif ev.type == "test_result":
            out.append(
                (
                    f"tests: {d.get('passed', 0)} passed, {d.get('failed', 0)} failed, "
                    f"{d.get('errors', 0)} errors ({d.get('command', '')})",
                    info,
                )
            )
        elif ev.type == "run_finished":
            out.append((f"finished: {d.get('outcome')} - {d.get('summary', '')}", info))
        return out

    def _drain_partials(self) -> list[tuple[str, types.MessageType]]:
        out = []
        for kind, label in (("reasoning", "thinking"), ("content", "answer")):
            if self._partial[kind].strip():
                out.append((f"{label}: {self._partial[kind]}", types.MessageType.Log))
            self._partial[kind] = ""
        return out

    def _markdown(self, ev: Event) -> str:
        d = ev.data
        head = ""
        if ev.type in _MERGEABLE and ev.type != self._last_kind:
            head = "\n\n### Thinking\n\n" if ev.type == "reasoning" else "\n\n### Answer\n\n"
        self._last_kind = ev.type
        if ev.type in _MERGEABLE:
            return head + str(d.get("text", ""))
        if ev.type == "tool_call":
            args = json.dumps(d.get("args"), ensure_ascii=False)
            return f"\n\n- **{d.get('name')}** `{args[:300]}`\n"
        if ev.type == "tool_result":
            return f"  - {'ok' if d.get('ok') else 'error'}: {d.get('summary', '')}\n"
        if ev.type == "edit":
            return f"\n\n```diff\n{str(d.get('diff', '')).rstrip()}\n```\n"
        if ev.type == "test_result":
            return (
                f"\n\n**Tests**: {d.get('passed', 0)} passed, {d.get('failed', 0)} failed, "
                f"{d.get('errors', 0)} errors (`{d.get('command', '')}`)\n"
            )
        if ev.type == "run_finished":
            return f"\n\n## {d.get('outcome')}\n\n{d.get('summary', '')}\n"
        return ""

    def _append_transcript(self, text: str) -> None:
        if self.transcript is None or not text:
            return
        try:
            with self.transcript.open("a", encoding="utf-8") as fh:
                fh.write(safe_text(text))
        except OSError as exc:
            log.warning("transcript write failed: %s", exc)
            self.transcript = None

    def append_note(self, text: str) -> None:
        """Add a line to the transcript (delivery results and the like)."""
        self._append_transcript(f"\n\n> {text}\n")
