"""Pure parts of the model client: argument parsing, leaked tokens, schemas, SSE, errors, cost."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from k2lsp.errors import AuthError, ContextOverflow, ProviderError, QuotaExhausted, UsageError
from k2lsp.model.cost import cost_usd
from k2lsp.model.errors import classify_status, error_info
from k2lsp.model.request import (
    build_messages,
    choose_max_tokens,
    estimate_tokens,
    normalize_parameters,
    normalize_tools,
    prompt_chars,
)
from k2lsp.model.retry import backoff_delay
from k2lsp.model.stream import Accumulator, LiveFilter, SSEParser
from k2lsp.model.toolargs import strict_arguments
from k2lsp.model.toolparse import extract_leaked_calls
from k2lsp.model.types import Usage

# --- strict argument checking --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"path": "a.py"}', {"path": "a.py"}),
        ("", {}),
        ("   ", {}),
        (' {"n": [1, 2]}\n', {"n": [1, 2]}),
    ],
)
def test_one_json_object_is_accepted(text: str, expected: dict[str, Any]) -> None:
    assert strict_arguments(text) == (expected, None)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('```json\n{"path": "a.py"}\n```', "not valid JSON"),
        ('{"path": "a.py"} trailing words', "more than one JSON value"),
        ('{"path": "a.py"}{"path": "b.py"}', "more than one JSON value"),
        ('{"path": "a.py", "n": [1, 2', "not valid JSON"),
        ('{"path": "a.p', "not valid JSON"),
        ('"{\\"path\\": \\"a.py\\"}"', "not a JSON str"),
        ('Sure: {"path": "x"}', "not valid JSON"),
        ("[1, 2]", "not a JSON list"),
        ("42", "not a JSON int"),
    ],
)
def test_anything_but_one_json_object_is_refused_with_the_reason(text: str, why: str) -> None:
    args, problem = strict_arguments(text)
    assert args is None and problem is not None and why in problem


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=10), max_size=5))
def test_strict_arguments_round_trip_valid_json(obj: dict[str, Any]) -> None:
    import json

    assert strict_arguments(json.dumps(obj)) == (obj, None)


# --- leaked raw K2 tool tokens ---------------------------------------------------------------

LEAK = (
    "Let me look. <|tool_calls_section_begin|> <|tool_call_begin|> functions.read_file:3 "
    '<|tool_call_argument_begin|> {"path": "a.py"} <|tool_call_end|>'
    '<|tool_call_begin|>functions.grep:4<|tool_call_argument_begin|>{"q": "x"}<|tool_call_end|>'
    "<|tool_calls_section_end|>"
)


def test_leaked_calls_are_parsed_and_tokens_stripped() -> None:
    clean, calls = extract_leaked_calls(LEAK)
    assert clean == "Let me look."
    assert calls == [
        ("functions.read_file:3", "read_file", '{"path": "a.py"}'),
        ("functions.grep:4", "grep", '{"q": "x"}'),
    ]


def test_truncated_leak_still_yields_the_call() -> None:
    text = (
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.ls:0"
        '<|tool_call_argument_begin|>{"a": 1}'
    )
    clean, calls = extract_leaked_calls(text)
    assert clean == "" and calls == [("functions.ls:0", "ls", '{"a": 1}')]


def test_live_filter_never_shows_tool_tokens_even_split_across_deltas() -> None:
    seen: list[str] = []
    live = LiveFilter("content", lambda k, t: seen.append(t))
    for i in range(0, len(LEAK), 3):
        live.feed(LEAK[i : i + 3])
    live.close()
    assert "".join(seen) == "Let me look. "


def test_live_filter_releases_a_lone_angle_bracket() -> None:
    seen: list[str] = []
    live = LiveFilter("content", lambda k, t: seen.append(t))
    live.feed("a <")
    live.feed("| b")
    live.close()
    assert "".join(seen) == "a <| b"


# --- tool schema normalisation ---------------------------------------------------------------


def test_schema_refs_inlined_optional_simplified_titles_dropped() -> None:
    params = {
        "title": "Params",
        "type": "object",
        "$defs": {"Mode": {"title": "Mode", "enum": ["a", "b"]}},
        "properties": {
            "title": {"title": "Title", "type": "string"},  # a property *named* title stays
            "mode": {"$ref": "#/$defs/Mode", "description": "how"},
            "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
            "flag": {"enum": [True, False]},
            "n": {"enum": [1, 2]},
            "any": {},
            "tags": {"type": "array", "items": {"const": "x"}},
        },
    }
    out = normalize_parameters(params)
    props = out["properties"]
    assert "title" not in out and "$defs" not in out
    assert props["title"] == {"type": "string"}
    assert props["mode"] == {"enum": ["a", "b"], "type": "string", "description": "how"}
    assert props["limit"]["type"] == "integer" and "anyOf" not in props["limit"]
    assert props["flag"]["type"] == "boolean" and props["n"]["type"] == "integer"
    assert props["any"]["type"] == "string"
    assert props["tags"]["items"] == {"enum": ["x"], "type": "string"}


def test_missing_parameters_become_an_empty_object() -> None:
    tools = normalize_tools([{"type": "function", "function": {"name": "ls"}}])
    assert tools[0]["function"]["parameters"] == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    ("tools", "needle"),
    [
        ([{"function": {"name": "bad name"}}], "invalid"),
        ([{"function": {"name": "9lives"}}], "invalid"),
        ([{"function": {"name": "x" * 65}}], "invalid"),
        ([{"function": {"name": f"t{i}"}} for i in range(129)], "at most 128"),
        ([{"function": {"name": "f", "parameters": {"type": "string"}}}], "root must be an object"),
    ],
)
def test_bad_tools_are_usage_errors(tools: list[dict[str, Any]], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        normalize_tools(tools)


# --- outgoing messages -----------------------------------------------------------------------


def test_outgoing_messages_fill_placeholders_and_move_reasoning_to_the_host_field() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "ls", "arguments": {"a": 1}}}
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "reasoning_content": "why", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c", "content": None},
        {"role": "assistant", "content": None},
    ]
    out = build_messages(history, send_field="reasoning", thinking=True)
    assert out[1] == {
        "role": "assistant",
        "reasoning": "why",
        "tool_calls": [{**call, "function": {"name": "ls", "arguments": '{"a": 1}'}}],
    }
    assert out[2]["content"].strip() and out[3]["content"].strip()
    assert history[1]["content"] == "" and history[1]["tool_calls"][0]["function"]["arguments"] == {
        "a": 1
    }


def test_max_tokens_at_least_16k_and_clamped() -> None:
    assert choose_max_tokens(8_000, 1_000, 262_144) == 16_000
    assert choose_max_tokens(32_000, 1_000, 262_144) == 32_000
    assert choose_max_tokens(32_000, 240_000, 262_144) == 262_144 - 240_000 - 512
    with pytest.raises(ContextOverflow):
        choose_max_tokens(32_000, 262_000, 262_144)
    # never below the minimum: too little room is an overflow (the loop compacts), not a
    # truncated thinking budget
    with pytest.raises(ContextOverflow):
        choose_max_tokens(32_000, 250_000, 262_144)
    # a small context: the minimum is a quarter of it
    assert choose_max_tokens(32_000, 10_000, 16_000) == 16_000 - 10_000 - 512
    with pytest.raises(ContextOverflow):
        choose_max_tokens(32_000, 12_000, 16_000)


def test_estimate_uses_the_calibrated_ratio_with_a_margin() -> None:
    msgs = [{"role": "user", "content": "x" * 4_000}]
    chars = prompt_chars(msgs, [])
    assert estimate_tokens(msgs, []) == chars // 3 + 16
    assert estimate_tokens(msgs, [], 0.25) == int(chars * 0.25 * 1.05) + 16


# --- SSE and accumulation --------------------------------------------------------------------


def test_sse_parser_handles_comments_multiline_data_and_done() -> None:
    p = SSEParser()
    lines = [": ping", "", "event: message", 'data: {"a":', "data: 1}", "", "data: [DONE]", ""]
    out = [d for d in (p.feed(line) for line in lines) if d is not None]
    assert out == ['{"a":\n1}'] and p.done


def test_accumulator_never_overwrites_ids_or_names_with_empty() -> None:
    acc = Accumulator()
    acc.feed(
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "functions.a:0",
                                "type": "function",
                                "function": {"name": "a", "arguments": "{"},
                            }
                        ]
                    }
                }
            ]
        }
    )
    acc.feed(
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "", "function": {"name": "", "arguments": "}"}}
                        ]
                    }
                }
            ]
        }
    )
    assert acc.calls() == [("functions.a:0", "a", "{}")]


def test_accumulator_reads_openrouter_reasoning_details_merged() -> None:
    acc = Accumulator()
    for piece in ["ab", "cd"]:
        acc.feed(
            {
                "choices": [
                    {
                        "delta": {
                            "reasoning": piece,
                            "reasoning_details": [
                                {
                                    "type": "reasoning.text",
                                    "text": piece,
                                    "index": 0,
                                    "format": "unknown",
                                }
                            ],
                        }
                    }
                ]
            }
        )
    assert acc.reasoning == "abcd" and acc.reasoning_field == "reasoning"
    assert acc.details == [
        {"type": "reasoning.text", "text": "abcd", "index": 0, "format": "unknown"}
    ]


# --- errors, retry, cost ---------------------------------------------------------------------


def test_openrouter_metadata_raw_is_inspected() -> None:
    body = {
        "error": {
            "message": "Provider returned error",
            "code": 429,
            "metadata": {
                "raw": '{"error": {"type": "exceeded_current_quota_error", '
                '"message": "no balance"}}'
            },
        }
    }
    assert error_info(body) == (
        "exceeded_current_quota_error",
        "Provider returned error: no balance",
    )
    f = classify_status(429, body, key_hint="K2LSP_API_KEY")
    assert isinstance(f.error, QuotaExhausted) and not f.retry


@pytest.mark.parametrize(
    ("status", "body", "retry", "exc"),
    [
        (
            401,
            {
                "error": {
                    "type": "invalid_authentication_error",
                    "message": "bad sk-secretsecret123",
                }
            },
            False,
            AuthError,
        ),
        (402, {"error": {"message": "Insufficient credits"}}, False, QuotaExhausted),
        (429, {"error": {"type": "engine_overloaded_error", "message": "busy"}}, True, None),
        (408, "timeout", True, None),
        (502, "<html>bad gateway</html>", True, None),
        (422, {"error": {"message": "unprocessable"}}, False, ProviderError),
    ],
)
def test_classify_status(status: int, body: Any, retry: bool, exc: type | None) -> None:
    f = classify_status(status, body, key_hint="K2LSP_API_KEY", secrets=("sk-secretsecret123",))
    assert f.retry is retry
    assert (type(f.error) if f.error else None) is exc
    assert "sk-secretsecret123" not in f.reason


def test_backoff_grows_is_capped_and_honours_the_host() -> None:
    assert all(0.5 <= backoff_delay(1, 1.0, 60) <= 1.0 for _ in range(20))
    assert all(backoff_delay(10, 1.0, 8.0) <= 8.0 for _ in range(20))
    assert backoff_delay(3, 1.0, 8.0, forced_s=7) == 7


def test_cost_counts_reasoning_as_output_and_cached_at_hit_rate() -> None:
    usage = Usage(prompt_tokens=2_000_000, cached_tokens=1_000_000, completion_tokens=1_000_000)
    prices = {"input_cache_hit": 0.15, "input": 0.60, "output": 2.50}
    assert cost_usd(usage, prices) == pytest.approx(0.15 + 0.60 + 2.50)
