"""Request checks of the fake K2 server: the 400s a real K2 host answers (see k2-protocol.md).

Each check returns an error message (the server answers HTTP 400 invalid_request_error with it)
or None when the request is acceptable.
"""

from __future__ import annotations

import json
import re
from typing import Any

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
REASONING_KEYS = ("reasoning_content", "reasoning", "reasoning_details")


def thinking_enabled(body: dict[str, Any]) -> bool:
    """Whether the request runs with thinking on (on unless explicitly disabled)."""
    thinking = body.get("thinking")
    return not (isinstance(thinking, dict) and thinking.get("type") == "disabled")


def prompt_estimate(body: dict[str, Any]) -> int:
    """A rough token count of the prompt (4 characters per token)."""
    text = json.dumps(body.get("messages", [])) + json.dumps(body.get("tools", []))
    return len(text) // 4 + 1


def _check_schema(schema: Any, where: str) -> str | None:
    if not isinstance(schema, dict):
        return f"{where}: schema must be an object"
    if "$ref" in schema or "$defs" in schema:
        return f"{where}: $ref is not supported, inline the definition"
    if "type" not in schema and "anyOf" not in schema:
        return f"{where}: type is not defined"
    for name, sub in (schema.get("properties") or {}).items():
        err = _check_schema(sub, f"{where}.{name}")
        if err:
            return err
    if "items" in schema:
        return _check_schema(schema["items"], f"{where}[]")
    for i, sub in enumerate(schema.get("anyOf") or []):
        err = _check_schema(sub, f"{where}.anyOf[{i}]")
        if err:
            return err
    return None


def check_tools(tools: Any) -> str | None:
    """Tool list rules: ≤128 tools, name regex, object root, typed properties, no $ref."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "tools must be a list"
    if len(tools) > 128:
        return f"too many tools: {len(tools)} > 128"
    for i, tool in enumerate(tools):
        fn = tool.get("function") or {}
        name = fn.get("name", "")
        if not NAME_RE.match(str(name)):
            return f"tools[{i}]: function name {name!r} is invalid"
        params = fn.get("parameters")
        if params is None:
            continue
        if not isinstance(params, dict) or params.get("type") != "object":
            return f"tools[{i}] {name}: parameters root must be an object"
        err = _check_schema(params, f"tools[{i}] {name}")
        if err:
            return err
    return None


def _check_message(i: int, msg: dict[str, Any], thinking: bool) -> str | None:
    role = msg.get("role")
    content = msg.get("content")
    if content == "" or content == []:
        return f"Invalid request: the message at position {i} with role '{role}' must not be empty"
    if role == "assistant" and msg.get("tool_calls"):
        has = any(msg.get(k) is not None for k in REASONING_KEYS)
        if thinking and not has:
            return (
                "thinking is enabled but reasoning_content is missing in assistant tool call "
                f"message at index {i}"
            )
    elif role == "assistant" and content is None and not msg.get("tool_calls"):
        return (
            f"Invalid request: the message at position {i} with role 'assistant' must not be empty"
        )
    if role == "tool" and not isinstance(content, str):
        return f"Invalid request: tool message at position {i} must have string content"
    return None


def check_messages(messages: Any, thinking: bool) -> str | None:
    """Message rules: non-empty content, reasoning on tool-call messages, tool replies in order."""
    if not isinstance(messages, list) or not messages:
        return "Invalid request: messages must be a non-empty list"
    pending: list[str] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            return f"Invalid request: message {i} is not an object"
        err = _check_message(i, msg, thinking)
        if err:
            return err
        role = msg.get("role")
        if role == "tool":
            cid = msg.get("tool_call_id")
            if not pending or cid != pending[0]:
                return (
                    f"Invalid request: tool_call_id {cid} is not found or out of order (index {i})"
                )
            pending.pop(0)
            continue
        if pending:
            return f"Invalid request: tool call {pending[0]} has no tool message (index {i})"
        if role == "assistant":
            pending = [c.get("id", "") for c in msg.get("tool_calls") or []]
    if pending:
        return (
            f"Invalid request: tool call {pending[0]} has no tool message (index {len(messages)})"
        )
    return None


def check_request(body: dict[str, Any], context_limit: int | None) -> str | None:
    """Every check in order; the first failure's message, or None."""
    temp = body.get("temperature")
    if temp is not None and not (0 <= temp <= 1):
        return f"Invalid request: temperature {temp} out of range [0, 1]"
    if body.get("tool_choice") not in (None, "auto", "none"):
        return "Invalid request: tool_choice only supports auto or none"
    if "thinking" in body:
        if not isinstance(body["thinking"], dict):
            return 'Invalid request: thinking must be an object like {"type": "enabled"}'
        if "reasoning_effort" in body:
            return "Invalid request: thinking and reasoning_effort cannot be used together"
    err = check_tools(body.get("tools")) or check_messages(
        body.get("messages"), thinking_enabled(body)
    )
    if err:
        return err
    if context_limit is not None:
        total = prompt_estimate(body) + int(body.get("max_tokens") or 0)
        if total > context_limit:
            return (
                "Invalid request: Your request exceeded model token limit: "
                f"{context_limit} (requested {total})"
            )
    return None


def _count_calls(body: dict[str, Any]) -> int:
    return sum(
        len(m.get("tool_calls") or []) for m in body.get("messages", []) if isinstance(m, dict)
    )
