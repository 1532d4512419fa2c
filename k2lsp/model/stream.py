"""SSE parsing and chunk accumulation for one streamed attempt.

We read the raw SSE lines ourselves (the SDK's iterator hides whether `data: [DONE]` arrived,
and a stream without it must be thrown away). Chunks are plain dicts, so host-specific fields
(`reasoning_content`, `reasoning`, `reasoning_details`, usage inside `choices[0]`) are read
directly rather than through the SDK's typed models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from k2lsp.model.toolparse import CALL_BEGIN, SECTION_BEGIN

DeltaCallback = Callable[[str, str], None]
REASONING_KEYS = ("reasoning_content", "reasoning")


class SSEParser:
    """Turns SSE lines into event data strings; remembers whether `[DONE]` was seen."""

    def __init__(self) -> None:
        self.done = False
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        """Feed one line (without its newline); returns a complete event's data, if any."""
        line = line.rstrip("\r")
        if line == "":
            if not self._data:
                return None
            data = "\n".join(self._data)
            self._data = []
            if data.strip() == "[DONE]":
                self.done = True
                return None
            return data
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def flush(self) -> str | None:
        """The last event when the stream ended without a trailing blank line."""
        return self.feed("")


class LiveFilter:
    """Passes live text through but never shows raw K2 tool tokens (holds back a partial one)."""

    MARKERS = (SECTION_BEGIN, CALL_BEGIN)

    def __init__(self, kind: str, sink: DeltaCallback | None) -> None:
        self.kind = kind
        self.sink = sink
        self.pending = ""
        self.suppressed = False

    def _emit(self, text: str) -> None:
        if text and self.sink is not None:
            self.sink(self.kind, text)

    def feed(self, text: str) -> None:
        """Forward `text`, cutting at the first tool token."""
        if self.suppressed:
            return
        buf = self.pending + text
        self.pending = ""
        cut = min((i for i in (buf.find(m) for m in self.MARKERS) if i >= 0), default=-1)
        if cut >= 0:
            self._emit(buf[:cut])
            self.suppressed = True
            return
        k = buf.rfind("<")
        if k >= 0 and any(m.startswith(buf[k:]) for m in self.MARKERS):
            self._emit(buf[:k])
            self.pending = buf[k:]
        else:
            self._emit(buf)

    def close(self) -> None:
        """Flush text held back at the end of the stream."""
        if not self.suppressed:
            self._emit(self.pending)
        self.pending = ""


@dataclass
class _Slot:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class Accumulator:
    """Builds one reply from stream chunks."""

    on_delta: DeltaCallback | None = None
    reasoning_parts: list[str] | None = None
    reasoning_field: str | None = None
    content_parts: list[str] = field(default_factory=list)
    slots: dict[int, _Slot] = field(default_factory=dict)
    details: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    error: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._live = {k: LiveFilter(k, self.on_delta) for k in ("reasoning", "content")}

    def feed(self, chunk: dict[str, Any]) -> None:
        """Add one parsed chunk."""
        if chunk.get("error"):  # OpenRouter reports upstream failures inside a 200 stream
            self.error = chunk
            return
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if isinstance(choice.get("usage"), dict):
                self.usage = choice["usage"]
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                if choice["finish_reason"] == "error":
                    self.error = {"error": {"message": "the host ended the stream with an error"}}
            self._delta(choice.get("delta") or {})

    def _delta(self, delta: dict[str, Any]) -> None:
        for key in REASONING_KEYS:
            piece = delta.get(key)
            if isinstance(piece, str):
                if self.reasoning_parts is None:
                    self.reasoning_parts = []
                    self.reasoning_field = key
                self.reasoning_parts.append(piece)
                self._live["reasoning"].feed(piece)
                break  # a host sending both fields sends the same text twice
        if isinstance(delta.get("reasoning_details"), list):
            self._merge_details(delta["reasoning_details"])
        if isinstance(delta.get("content"), str):
            self.content_parts.append(delta["content"])
            self._live["content"].feed(delta["content"])
        for pos, tc in enumerate(delta.get("tool_calls") or []):
            self._tool_delta(pos, tc)

    def _tool_delta(self, pos: int, tc: dict[str, Any]) -> None:
        idx = tc.get("index")
        if not isinstance(idx, int):
            known = [i for i, s in self.slots.items() if tc.get("id") and s.id == tc.get("id")]
            fresh = tc.get("id") and not known
            idx = (
                known[0]
                if known
                else (len(self.slots) if fresh or not self.slots else max(self.slots))
            )
        slot = self.slots.setdefault(idx, _Slot())
        fn = tc.get("function") or {}
        if tc.get("id") and not slot.id:
            slot.id = str(tc["id"])
        if fn.get("name") and not slot.name:
            slot.name = str(fn["name"])
        if isinstance(fn.get("arguments"), str):
            slot.arguments += fn["arguments"]

    def _merge_details(self, items: list[Any]) -> None:
        """Merge streamed OpenRouter `reasoning_details` fragments by index."""
        for item in items:
            if not isinstance(item, dict):
                continue
            idx = item.get("index", len(self.details))
            target = next((d for d in self.details if d.get("index", -1) == idx), None)
            if target is None or target.get("type") != item.get("type"):
                self.details.append(dict(item))
                continue
            for key, value in item.items():
                if key in ("text", "summary", "data", "signature") and isinstance(value, str):
                    target[key] = (target.get(key) or "") + value
                else:
                    target.setdefault(key, value)

    def close(self) -> None:
        """Flush live text at the end of a complete stream."""
        for live in self._live.values():
            live.close()

    @property
    def reasoning(self) -> str | None:
        """The reasoning text (None when no reasoning field ever arrived)."""
        return None if self.reasoning_parts is None else "".join(self.reasoning_parts)

    @property
    def content(self) -> str:
        """The answer text."""
        return "".join(self.content_parts)

    def calls(self) -> list[tuple[str, str, str]]:
        """(id, name, arguments) of every call, in index order (id may be empty)."""
        return [(s.id, s.name, s.arguments) for _, s in sorted(self.slots.items())]
