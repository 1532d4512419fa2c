"""The prompt size is the length of the JSON the request sends, without re-encoding it."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from k2lsp.model.request import build_messages, json_chars, prompt_chars

_text = st.text(st.characters(codec="utf-8"), max_size=40) | st.text(min_size=512, max_size=900)
_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_json_chars_is_the_encoded_length(value: Any) -> None:
    assert json_chars(value) == len(json.dumps(value, ensure_ascii=False))
    assert json_chars(value) == len(json.dumps(value, ensure_ascii=False))  # cached path


def test_prompt_chars_of_a_long_history_matches_the_encoding() -> None:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "rules " * 900}]
    for i in range(30):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "read_file",
                "arguments": json.dumps({"path": f"a{i}.py"})}}  # fmt: skip
        msgs.append({"role": "assistant", "content": "", "reasoning_content": "why " * 400,
                     "tool_calls": [call]})  # fmt: skip
        msgs.append({"role": "tool", "tool_call_id": f"c{i}", "content": 'a "b" \u00e9\n\t' * 300})
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": {}}}]
    for _ in range(2):  # the second request reuses the remembered lengths
        out = build_messages(msgs, send_field=None, thinking=True)
        expected = len(json.dumps(out, ensure_ascii=False)) + len(json.dumps(tools))
        assert prompt_chars(out, tools) == expected
