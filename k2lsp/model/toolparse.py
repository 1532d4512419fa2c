"""Recovery of tool calls leaked as raw K2 tokens (argument checking is in model/toolargs.py).

Bad hosts leak the model's raw tool-call tokens
(`<|tool_calls_section_begin|>` … `<|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>
{json}<|tool_call_end|>` … `<|tool_calls_section_end|>`) into `content` or reasoning.
"""

from __future__ import annotations

import re

SECTION_BEGIN = "<|tool_calls_section_begin|>"
SECTION_END = "<|tool_calls_section_end|>"
CALL_BEGIN = "<|tool_call_begin|>"
ARG_BEGIN = "<|tool_call_argument_begin|>"
CALL_END = "<|tool_call_end|>"
TOKENS = (SECTION_BEGIN, SECTION_END, CALL_BEGIN, ARG_BEGIN, CALL_END)

_CALL_RE = re.compile(
    re.escape(CALL_BEGIN)
    + r"\s*(?P<id>[^<\s]+?)\s*"
    + re.escape(ARG_BEGIN)
    + r"(?P<args>.*?)"
    + r"(?:"
    + re.escape(CALL_END)
    + r"|(?="
    + re.escape(CALL_BEGIN)
    + r")|(?="
    + re.escape(SECTION_END)
    + r")|$)",
    re.DOTALL,
)
_SECTION_RE = re.compile(
    re.escape(SECTION_BEGIN) + r".*?(?:" + re.escape(SECTION_END) + r"|$)", re.DOTALL
)


def has_leaked_tokens(text: str | None) -> bool:
    """Whether `text` contains any raw K2 tool-call token."""
    return bool(text) and any(tok in text for tok in TOKENS)  # type: ignore[operator]


def _name_from_id(call_id: str) -> str:
    """`functions.read_file:3` -> `read_file` (also tolerates `read_file:3`, `read_file`)."""
    name = call_id.split(":", 1)[0]
    return name.removeprefix("functions.")


def extract_leaked_calls(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """Split leaked raw tool tokens out of `text`.

    Returns the text without any tool token and the calls found as (id, name, arguments).
    """
    calls: list[tuple[str, str, str]] = []
    for m in _CALL_RE.finditer(text):
        call_id = m.group("id").strip()
        args = m.group("args").strip()
        for tok in TOKENS:
            args = args.replace(tok, "")
        calls.append((call_id, _name_from_id(call_id), args.strip()))
    clean = _SECTION_RE.sub("", text)
    clean = _CALL_RE.sub("", clean)
    for tok in TOKENS:
        clean = clean.replace(tok, "")
    return clean.strip(), calls
