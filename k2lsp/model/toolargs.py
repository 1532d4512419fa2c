"""Strict tool-call arguments: exactly one JSON object, or the call is not run.

A call is executed only when its argument text is one JSON object (surrounding whitespace
allowed; an empty text means `{}`). Anything else — truncated JSON, a valid object followed by
more text, an array, a string holding JSON, a code fence — is refused, and so is the call a
reply was cut in by `finish_reason: "length"`. A refused call is echoed back to the host with
arguments `{}` (a text every host parses: llama.cpp answers HTTP 500 "Failed to parse tool call
arguments as JSON" for the whole conversation otherwise) and answered with a tool error that
says what was wrong, so the model can call it again. See docs/self-hosting.md.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from k2lsp.model.types import ToolCall

SAFE_ECHO = "{}"
_SNIPPET = 120


def _snippet(text: str) -> str:
    return repr(text[:_SNIPPET] + ("…" if len(text) > _SNIPPET else ""))


def strict_arguments(text: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """(arguments, None) when `text` is exactly one JSON object, else (None, what is wrong)."""
    raw = (text or "").strip()
    if not raw:
        return {}, None
    try:
        obj, end = json.JSONDecoder().raw_decode(raw)
    except json.JSONDecodeError as exc:
        return None, f"the arguments are not valid JSON ({exc.msg} at character {exc.pos}): " + (
            _snippet(raw)
        )
    if end != len(raw):
        return None, (
            f"the arguments hold more than one JSON value (text after character {end}): "
            + _snippet(raw)
        )
    if not isinstance(obj, dict):
        return None, f"the arguments must be one JSON object, not a JSON {type(obj).__name__}"
    return obj, None


def checked_calls(calls: list[ToolCall], finish_reason: str | None) -> list[ToolCall]:
    """The calls of one reply, each marked with a `problem` when it must not run.

    The last call of a reply cut by `length` is marked whatever its text looks like: the
    host stopped generating while it was being written.
    """
    out = []
    for i, call in enumerate(calls):
        _, problem = strict_arguments(call.arguments)
        if finish_reason == "length" and i == len(calls) - 1:
            problem = (
                "the reply was cut off by the output token limit (finish_reason 'length') while "
                "this call was being written"
            )
        if problem is None:
            out.append(call)
        else:
            out.append(replace(call, arguments=SAFE_ECHO, problem=problem, received=call.arguments))
    return out


def refusal_text(call: ToolCall) -> str:
    """The tool result the model gets for a call that was not run."""
    return (
        f"Error: this {call.name} call was NOT run: {call.problem}. Call {call.name} again "
        "with its arguments as exactly one JSON object matching its schema (nothing before or "
        "after it); if the arguments are long, split the work into smaller calls."
    )


def repair_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of `messages` where every tool call's arguments are one JSON object (else `{}`).

    Used once when a host still rejects the history (a conversation imported or built before
    strict checking); returns the same list object when nothing needed repair.
    """
    changed = False
    out = []
    for msg in messages:
        calls = msg.get("tool_calls") if msg.get("role") == "assistant" else None
        bad = [
            i
            for i, c in enumerate(calls or [])
            if isinstance((c.get("function") or {}).get("arguments"), str)
            and strict_arguments(c["function"]["arguments"])[1] is not None
        ]
        if not bad:
            out.append(msg)
            continue
        changed = True
        fixed = [
            {**c, "function": {**c["function"], "arguments": SAFE_ECHO}} if i in bad else c
            for i, c in enumerate(calls or [])
        ]
        out.append({**msg, "tool_calls": fixed})
    return out if changed else messages
