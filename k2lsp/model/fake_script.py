"""Script items of the fake K2 server: scripted replies, injected faults, and how a reply is
rendered as the SSE chunks (or the JSON body) a real K2 host would send.

Shapes follow docs `k2-protocol.md`: reasoning deltas first (field name per host), then content,
then tool calls streamed by index (first chunk id+type+name, later chunks argument fragments),
usage inside `choices[0]` (Moonshot) or on the chunk / a final `choices: []` chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

LEAK_BEGIN = "<|tool_calls_section_begin|>"
LEAK_END = "<|tool_calls_section_end|>"
LEAK_CALL = "<|tool_call_begin|>"
LEAK_ARG = "<|tool_call_argument_begin|>"
LEAK_CALL_END = "<|tool_call_end|>"

REASONING_FIELDS = ("reasoning_content", "reasoning", "openrouter")
USAGE_PLACES = ("choice", "chunk", "final", "none")


@dataclass
class Reply:
    """One scripted assistant reply.

    `tool_calls` items are `(name, args)` or `(name, args, id)`; `args` is a dict (sent as JSON)
    or a raw string (sent verbatim, e.g. malformed JSON). `reasoning_field` is
    `reasoning_content`, `reasoning` or `openrouter` (reasoning + reasoning_details); None uses
    the server default. `usage` is `choice` | `chunk` | `final` (a `choices: []` chunk) | `none`.
    `leak` = `content` | `reasoning` renders the calls as raw K2 tool tokens in that text instead
    of structured calls. `hold` stalls the stream after the first chunk until the server is
    released or the client disconnects.
    """

    reasoning: str | None = None
    content: str | None = None
    tool_calls: list[tuple[Any, ...]] = field(default_factory=list)
    delay_s: float = 0.0
    chunk_size: int = 6
    reasoning_field: str | None = None
    usage: str | None = None
    cached_in: str = "top"  # top: usage.cached_tokens | details: prompt_tokens_details
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    finish_reason: str | None = None
    omit_ids: bool = False
    blank_followups: bool = False  # later tool chunks carry id "" and name ""
    interleave: bool = True
    leak: str | None = None
    hold: bool = False

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Reply:
        """A Reply from a script-file object (`tool_calls` as lists)."""
        data = dict(obj)
        data["tool_calls"] = [tuple(c) for c in data.get("tool_calls", [])]
        return cls(**data)


@dataclass
class Fault:
    """An injected failure: an HTTP error, a stream cut, a mid-stream error or a reset."""

    kind: str  # http | cut | stream_error | reset
    status: int = 500
    type: str = ""
    message: str = ""
    openrouter: bool = False
    after_chunks: int = 0
    abrupt: bool = False
    reply: Reply | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None  # an http fault's exact JSON body (host shapes)

    @classmethod
    def http(
        cls,
        status: int,
        type: str = "server_error",
        message: str = "fake failure",
        *,
        openrouter: bool = False,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """An HTTP error with a Moonshot-shaped (or OpenRouter-wrapped) JSON body."""
        return cls("http", status, type, message, openrouter, headers=dict(headers or {}))

    @classmethod
    def cut(cls, after_chunks: int, reply: Reply | None = None, *, abrupt: bool = False) -> Fault:
        """Stream `reply` (default: a reasoning + tool call reply) and stop after N chunks,
        without `[DONE]`; `abrupt` drops the connection mid-body instead of ending cleanly."""
        default = Reply(reasoning="I will look.", tool_calls=[("read_file", {"path": "cut.py"})])
        return cls("cut", after_chunks=after_chunks, reply=reply or default, abrupt=abrupt)

    @classmethod
    def stream_error(
        cls,
        message: str = "upstream error",
        type: str = "server_error",
        after_chunks: int = 1,
        code: int = 502,
    ) -> Fault:
        """A 200 stream that sends N chunks then an OpenRouter-style error chunk (`error` with
        `code`, and `finish_reason: "error"`)."""
        reply = Reply(reasoning="Thinking about it for a while.", content="partial")
        return cls("stream_error", code, type, message, after_chunks=after_chunks, reply=reply)

    @classmethod
    def raw(cls, status: int, body: dict[str, Any]) -> Fault:
        """An HTTP error with exactly this JSON body (e.g. `fake_hosts.overflow_error`)."""
        return cls("http", status, body=dict(body))

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection without any response (connection reset)."""
        return cls("reset")

    def error_body(self) -> dict[str, Any]:
        """The JSON error body of an http fault."""
        if self.body is not None:
            return self.body
        inner = {"error": {"message": self.message, "type": self.type}}
        if not self.openrouter:
            return inner
        return {
            "error": {
                "message": "Provider returned error",
                "code": self.status,
                "metadata": {"raw": json.dumps(inner), "provider_name": "Moonshot AI"},
            }
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Fault:
        """A Fault from a script-file object `{"fault": kind, ...}`."""
        data = dict(obj)
        kind = data.pop("fault")
        if "reply" in data and data["reply"] is not None:
            data["reply"] = Reply.from_json(data["reply"])
        if kind == "cut" and data.get("reply") is None:
            return cls.cut(data.get("after_chunks", 0), abrupt=data.get("abrupt", False))
        return cls(kind, **data)


ScriptItem = Reply | Fault


def load_script(items: list[dict[str, Any]]) -> list[ScriptItem]:
    """Parse a JSON script: objects with a `fault` key are faults, the rest replies."""
    return [Fault.from_json(o) if "fault" in o else Reply.from_json(o) for o in items]


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    if text == "":
        return [""]
    return [text[i : i + size] for i in range(0, len(text), size)]


def _args_text(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args)


def call_ids(reply: Reply, first_n: int) -> list[str]:
    """Native ids `functions.NAME:N` counted over the conversation (explicit ids win)."""
    ids = []
    for i, call in enumerate(reply.tool_calls):
        ids.append(call[2] if len(call) > 2 else f"functions.{call[0]}:{first_n + i}")
    return ids


def leaked_text(reply: Reply, first_n: int) -> str:
    """The calls of `reply` written as raw K2 tool tokens."""
    parts = [LEAK_BEGIN]
    for cid, call in zip(call_ids(reply, first_n), reply.tool_calls, strict=True):
        parts.append(f"{LEAK_CALL}{cid}{LEAK_ARG}{_args_text(call[1])}{LEAK_CALL_END}")
    parts.append(LEAK_END)
    return "".join(parts)


class Renderer:
    """Turns one Reply into chunk dicts for a given request."""

    def __init__(self, reply: Reply, *, model: str, first_n: int, field: str, usage: str) -> None:
        self.reply = reply
        self.model = model
        self.first_n = first_n
        self.field = reply.reasoning_field or field
        self.usage_place = reply.usage or usage
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.reasoning = reply.reasoning
        self.content = reply.content
        self.structured = not reply.leak and bool(reply.tool_calls)
        if reply.leak and reply.tool_calls:
            leak = leaked_text(reply, first_n)
            if reply.leak == "reasoning":
                self.reasoning = (self.reasoning or "") + leak
            else:
                self.content = (self.content or "") + leak

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    def _reasoning_delta(self, piece: str, index: int) -> dict[str, Any]:
        if self.field == "openrouter":
            detail = {"type": "reasoning.text", "text": piece, "format": "unknown", "index": 0}
            return {"reasoning": piece, "reasoning_details": [detail]}
        return {self.field: piece}

    def _tool_deltas(self) -> list[dict[str, Any]]:
        r = self.reply
        per_call: list[list[dict[str, Any]]] = []
        for i, (cid, call) in enumerate(zip(call_ids(r, self.first_n), r.tool_calls, strict=True)):
            head: dict[str, Any] = {"index": i, "type": "function"}
            if not r.omit_ids:
                head["id"] = cid
            head["function"] = {"name": call[0], "arguments": ""}
            seq = [head]
            for frag in _pieces(_args_text(call[1]), r.chunk_size * 2):
                follow: dict[str, Any] = {"index": i, "function": {"arguments": frag}}
                if r.blank_followups:
                    follow["id"] = ""
                    follow["function"]["name"] = ""
                seq.append(follow)
            per_call.append(seq)
        if not r.interleave:
            return [d for seq in per_call for d in seq]
        out: list[dict[str, Any]] = []
        for step in range(max((len(s) for s in per_call), default=0)):
            out.extend(seq[step] for seq in per_call if step < len(seq))
        return out

    def usage(self, prompt_estimate: int, cached_estimate: int) -> dict[str, Any]:
        """The usage object of this reply."""
        r = self.reply
        text = (self.reasoning or "") + (self.content or "")
        text += "".join(_args_text(c[1]) for c in r.tool_calls)
        prompt = r.prompt_tokens if r.prompt_tokens is not None else prompt_estimate
        completion = r.completion_tokens if r.completion_tokens is not None else len(text) // 4 + 1
        cached = r.cached_tokens if r.cached_tokens is not None else min(cached_estimate, prompt)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if r.cached_in == "details":
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        else:
            usage["cached_tokens"] = cached
        return usage

    def finish(self) -> str:
        """The finish_reason this reply ends with."""
        if self.reply.finish_reason is not None:
            return self.reply.finish_reason
        return "tool_calls" if self.structured else "stop"

    def chunks(self, usage: dict[str, Any]) -> list[dict[str, Any]]:
        """Every chunk of the stream, in order (without [DONE])."""
        r = self.reply
        deltas: list[dict[str, Any]] = []
        if self.reasoning is not None:
            for i, piece in enumerate(_pieces(self.reasoning, r.chunk_size)):
                deltas.append(self._reasoning_delta(piece, i))
        if self.content:
            deltas.extend({"content": p} for p in _pieces(self.content, r.chunk_size))
        if self.structured:
            deltas.extend({"tool_calls": [d]} for d in self._tool_deltas())
        if not deltas:
            deltas.append({"content": ""})
        deltas[0] = {"role": "assistant", **deltas[0]}
        out = [self._chunk(d) for d in deltas]
        last = self._chunk({}, self.finish())
        if self.usage_place == "choice":
            last["choices"][0]["usage"] = usage
        elif self.usage_place == "chunk":
            last["usage"] = usage
        out.append(last)
        if self.usage_place == "final":
            final = self._chunk({})
            final["choices"] = []
            final["usage"] = usage
            out.append(final)
        return out

    def completion(self, usage: dict[str, Any]) -> dict[str, Any]:
        """The non-streamed JSON body of this reply."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content or ""}
        if self.reasoning is not None:
            if self.field == "openrouter":
                msg["reasoning"] = self.reasoning
                msg["reasoning_details"] = [{"type": "reasoning.text", "text": self.reasoning}]
            else:
                msg[self.field] = self.reasoning
        if self.structured:
            ids = call_ids(self.reply, self.first_n)
            msg["tool_calls"] = [
                {
                    "id": cid,
                    "type": "function",
                    "function": {"name": c[0], "arguments": _args_text(c[1])},
                }
                for cid, c in zip(ids, self.reply.tool_calls, strict=True)
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": msg, "finish_reason": self.finish()}],
            "usage": usage,
        }
