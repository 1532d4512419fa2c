"""Request building: tool-schema normalisation, outgoing messages, `max_tokens` and thinking.

Everything here works on deep copies; the caller's history is never mutated (k2-protocol.md).
`WireHistory` keeps the outgoing form and JSON size of each history message, built once per
message, so a request costs work proportional to its new messages, not to the whole history.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from k2lsp.errors import ContextOverflow, UsageError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
MAX_TOOLS = 128
MIN_OUTPUT_TOKENS = 16_000
SAFETY_TOKENS = 512
ESTIMATE_MARGIN = 1.05
REASONING_PLACEHOLDER = "(reasoning from an earlier step is not available)"
EMPTY_TOOL_RESULT = "(the tool produced no output)"
EMPTY_TEXT = "(empty)"
_DROP_KEYS = {"title", "$schema", "examples", "discriminator"}
_REASONING_KEYS = ("reasoning_content", "reasoning")


def _enum_type(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "number"
    return "string"


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def _norm(schema: Any, defs: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """Normalise one sub-schema (inline $ref, simplify Optional, give everything a type)."""
    if not isinstance(schema, dict) or depth > 24:
        return {"type": "object"}
    s = {k: v for k, v in schema.items() if k not in _DROP_KEYS}
    if "$ref" in s:
        target = defs.get(str(s.pop("$ref")).rsplit("/", 1)[-1], {})
        s = {**_norm(target, defs, depth + 1), **{k: v for k, v in s.items() if k != "$defs"}}
    s.pop("$defs", None)
    s.pop("definitions", None)
    for key in ("anyOf", "oneOf"):
        if key in s:
            options = [o for o in s.pop(key) if not _is_null(o)]
            if len(options) == 1:
                s = {**_norm(options[0], defs, depth + 1), **s}
            elif options:
                s[key] = [_norm(o, defs, depth + 1) for o in options]
    if "allOf" in s and len(s["allOf"]) == 1:
        s = {**_norm(s.pop("allOf")[0], defs, depth + 1), **s}
    if "const" in s and "enum" not in s:
        s["enum"] = [s.pop("const")]
    if isinstance(s.get("type"), list):
        types = [t for t in s["type"] if t != "null"]
        s["type"] = types[0] if len(types) == 1 else types
    if "type" not in s and "anyOf" not in s and "oneOf" not in s:
        if "enum" in s:
            s["type"] = _enum_type(list(s["enum"]))
        elif "properties" in s:
            s["type"] = "object"
        elif "items" in s:
            s["type"] = "array"
        else:
            s["type"] = "string"
    if isinstance(s.get("properties"), dict):
        s["properties"] = {k: _norm(v, defs, depth + 1) for k, v in s["properties"].items()}
    if "items" in s:
        s["items"] = _norm(s["items"], defs, depth + 1)
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = _norm(s["additionalProperties"], defs, depth + 1)
    return s


def normalize_parameters(params: Any) -> dict[str, Any]:
    """A tool's `parameters` schema in the shape K2 hosts accept (root object, typed, no $ref)."""
    if params is None:
        return {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        raise UsageError(
            f"tool parameters must be a JSON schema object, got {type(params).__name__}"
        )
    defs = {**params.get("definitions", {}), **params.get("$defs", {})}
    out = _norm(params, defs)
    if out.get("type") != "object":
        raise UsageError(f"tool parameters root must be an object schema, got {out.get('type')!r}")
    out.setdefault("properties", {})
    return out


def normalize_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """OpenAI `tools[]` entries normalised for K2; UsageError on bad names or too many tools."""
    tools = tools or []
    if len(tools) > MAX_TOOLS:
        raise UsageError(f"{len(tools)} tools offered; K2 hosts accept at most {MAX_TOOLS}")
    out = []
    for entry in tools:
        fn = entry.get("function", entry)
        name = str(fn.get("name", ""))
        if not NAME_RE.match(name):
            raise UsageError(
                f"tool name {name!r} is invalid for K2: it must match {NAME_RE.pattern}"
            )
        item: dict[str, Any] = {"name": name}
        if fn.get("description"):
            item["description"] = str(fn["description"])
        item["parameters"] = normalize_parameters(fn.get("parameters"))
        out.append({"type": "function", "function": item})
    return out


def _assistant(msg: dict[str, Any], send_field: str | None, thinking: bool) -> dict[str, Any]:
    calls = msg.get("tool_calls") or []
    if not msg.get("content"):
        msg.pop("content", None)
        if not calls:
            msg["content"] = EMPTY_TEXT
    if not calls:
        if not msg.get("tool_calls"):
            msg.pop("tool_calls", None)
        return msg
    for call in calls:
        call.setdefault("type", "function")
        fn = call.setdefault("function", {})
        if not isinstance(fn.get("arguments"), str):
            fn["arguments"] = json.dumps(fn.get("arguments") or {})
        elif not fn["arguments"].strip():
            fn["arguments"] = "{}"
    have = next((k for k in _REASONING_KEYS if msg.get(k)), None)
    value = msg.get(have) if have else None
    target = send_field or have or "reasoning_content"
    for key in _REASONING_KEYS:
        msg.pop(key, None)
    if value:
        msg[target] = value
    elif thinking:
        msg[target] = REASONING_PLACEHOLDER
    return msg


def outgoing_message(
    original: dict[str, Any], *, send_field: str | None, thinking: bool
) -> dict[str, Any]:
    """One outgoing message from a deep copy: no empty content, reasoning on tool calls."""
    msg = copy.deepcopy(original)
    role = msg.get("role")
    if role == "assistant":
        msg = _assistant(msg, send_field, thinking)
    elif role == "tool":
        content = msg.get("content")
        if not isinstance(content, str):
            content = "" if content is None else json.dumps(content)
        msg["content"] = content if content.strip() else EMPTY_TOOL_RESULT
    elif msg.get("content") in ("", None, []):
        msg["content"] = EMPTY_TEXT
    return msg


def build_messages(
    messages: list[dict[str, Any]], *, send_field: str | None, thinking: bool
) -> list[dict[str, Any]]:
    """Outgoing messages from deep copies: no empty content, reasoning on tool-call messages."""
    return [outgoing_message(m, send_field=send_field, thinking=thinking) for m in messages]


class WireHistory:
    """The outgoing form of history messages and their JSON sizes, computed once per message.

    The loop's history is append-only and a stored message is never modified in place
    (k2-protocol.md: it is echoed byte for byte), so the outgoing copy of a message and its
    `json_chars` are remembered, keyed by the message object (held, so its id is never reused)
    and by the outgoing options. A request then costs a dictionary look-up per old message and
    the copy, sizing and JSON encoding of the new ones only; `built` counts the messages
    copied, sized and encoded, which is how the tests prove the work is incremental. The
    remembered copies are shared between requests and must not be modified.
    """

    def __init__(self, max_entries: int = 8192) -> None:
        self.max_entries = max_entries
        self.built = 0
        self._items: dict[int, _Wire] = {}
        self.texts: list[str] = []  # the wire JSON of each message of the last `build`

    def build(
        self, messages: list[dict[str, Any]], *, send_field: str | None, thinking: bool
    ) -> tuple[list[dict[str, Any]], int]:
        """The outgoing messages and `json_chars` of that list (what `prompt_chars` counts);
        their wire JSON texts are left in `texts` (see `encode_body`)."""
        opts = (send_field, thinking)
        out: list[dict[str, Any]] = []
        texts: list[str] = []
        chars = 2 + 2 * max(0, len(messages) - 1)
        items = self._items
        for msg in messages:
            hit = items.get(id(msg))
            if hit is None or hit[0] is not msg or hit[1] != opts:
                wire = outgoing_message(msg, send_field=send_field, thinking=thinking)
                hit = (msg, opts, wire, json_chars(wire), wire_json(wire))
                self.built += 1
                if len(items) >= self.max_entries:
                    items.pop(next(iter(items)))  # oldest first (dicts keep insertion order)
                items[id(msg)] = hit
            out.append(hit[2])
            texts.append(hit[4])
            chars += hit[3]
        if len(items) > 2 * len(messages) + 64:  # compacted away: forget (amortised O(1))
            self._items = {id(m): items[id(m)] for m in messages if id(m) in items}
        self.texts = texts
        return out, chars


_Wire = tuple[dict[str, Any], tuple[Any, ...], dict[str, Any], int, str]


def wire_json(value: Any) -> str:
    """`value` encoded as the openai SDK encodes a request body (compact, UTF-8 as is)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_body(body: dict[str, Any], message_texts: list[str] | None = None) -> bytes:
    """The request body as the bytes the openai SDK sends for `create(**sdk_arguments(body))`.

    The SDK sends `{"model", "stream", "messages", ...the rest of body..., ...extra_body}`;
    the messages are joined from their already encoded texts (`WireHistory.texts`) when given,
    so the history is not encoded again on every request."""
    extra = body.get("extra_body") or {}
    keys = ["model", "stream", "messages"]
    keys += [k for k in body if k not in ("model", "stream", "messages", "extra_body")]
    merged = {**{k: body[k] for k in keys}, **extra}
    parts = ["{"]
    for key, value in merged.items():
        if len(parts) > 1:
            parts.append(",")
        parts += (wire_json(key), ":")
        if key == "messages" and message_texts is not None and "messages" not in extra:
            parts.append("[")  # the long part: joined once with the rest, never copied alone
            for i, text in enumerate(message_texts):
                parts += (",", text) if i else (text,)
            parts.append("]")
        else:
            parts.append(wire_json(value))
    parts.append("}")
    return "".join(parts).encode()


def prompt_chars(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
    """The size of the prompt in JSON characters (what token estimates are scaled from).

    Exactly `len(json.dumps(messages, ensure_ascii=False)) + len(json.dumps(tools, ...))`,
    computed without encoding the history again on every request: the encoded length of each
    long string (tool results, reasoning) is remembered while the history holds it.
    """
    return json_chars(messages) + json_chars(tools)


_LONG = 512  # strings at least this long have their encoded length remembered
_MAX_REMEMBERED = 4096
_str_sizes: dict[int, tuple[str, int]] = {}


def _str_chars(value: str) -> int:
    if len(value) < _LONG:
        return len(json.dumps(value, ensure_ascii=False))
    hit = _str_sizes.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1]
    size = len(json.dumps(value, ensure_ascii=False))
    if len(_str_sizes) >= _MAX_REMEMBERED:
        _str_sizes.pop(next(iter(_str_sizes)))  # oldest first (dicts keep insertion order)
    _str_sizes[id(value)] = (value, size)
    return size


def json_chars(value: Any) -> int:
    """`len(json.dumps(value, ensure_ascii=False))` for JSON-like data, long strings cached."""
    if isinstance(value, str):
        return _str_chars(value)
    if isinstance(value, dict):
        if not value:
            return 2
        inner = sum(_str_chars(str(k)) + 2 + json_chars(v) for k, v in value.items())
        return 2 + inner + 2 * (len(value) - 1)
    if isinstance(value, list | tuple):
        if not value:
            return 2
        return 2 + sum(json_chars(v) for v in value) + 2 * (len(value) - 1)
    return len(json.dumps(value, ensure_ascii=False))


def estimate_tokens(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    tokens_per_char: float | None = None,
) -> int:
    """A conservative prompt size estimate: 3 characters per token, or `tokens_per_char`
    (calibrated from the host's real `prompt_tokens`) plus a 5% margin."""
    return estimate_from_chars(prompt_chars(messages, tools), tokens_per_char)


def estimate_from_chars(chars: int, tokens_per_char: float | None = None) -> int:
    """The prompt token estimate for a prompt of `chars` JSON characters (see estimate_tokens)."""
    if tokens_per_char is None:
        return chars // 3 + 16
    return int(chars * tokens_per_char * ESTIMATE_MARGIN) + 16


def min_output_tokens(context_length: int) -> int:
    """The least `max_tokens` worth sending: 16k, or a quarter of a small context."""
    return max(1024, min(MIN_OUTPUT_TOKENS, context_length // 4))


def choose_max_tokens(wanted: int, prompt_tokens: int, context_length: int) -> int:
    """`max_tokens` for a request: ≥16k (a quarter of a small context), clamped to what fits.

    Never less: a smaller budget truncates thinking into a reasoning-only reply, so when the
    room left is under the minimum this raises ContextOverflow and the caller compacts.
    """
    room = context_length - prompt_tokens - SAFETY_TOKENS
    floor = min_output_tokens(context_length)
    if room < floor:
        raise ContextOverflow(
            f"The prompt (~{prompt_tokens} tokens) leaves {max(room, 0)} tokens for the answer "
            f"in the {context_length}-token context (at least {floor} are needed); compact the "
            "history.",
            kind="context",
        )
    return min(max(wanted, MIN_OUTPUT_TOKENS), room)


def count_tool_calls(messages: list[dict[str, Any]]) -> int:
    """How many tool calls the conversation already holds (for synthesised ids)."""
    return sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")
