"""The fake K2 server speaks the wire shapes of k2-protocol.md and rejects what hosts reject."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from k2lsp.fake.server import FakeK2Server, Fault, Reply

USER = [{"role": "user", "content": "hi"}]


@dataclass
class Resp:
    status_code: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def fetch(url: str, data: dict[str, Any] | None = None, key: str | None = "sk-x") -> Resp:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    raw = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=raw, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return Resp(r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        return Resp(e.code, e.read().decode())


def post(base: str, body: dict[str, Any], key: str | None = "sk-x") -> Resp:
    return fetch(f"{base}/chat/completions", body, key)


def events(resp: Resp) -> list[Any]:
    """The SSE data payloads, with '[DONE]' kept as a string."""
    out: list[Any] = []
    for line in resp.text.split("\n"):
        if line.startswith("data: "):
            data = line[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "kimi-k2-thinking", "messages": USER, "stream": True, "max_tokens": 100, **kw}


def test_stream_has_reasoning_then_content_then_calls_and_done(fake_k2: FakeK2Server) -> None:
    fake_k2.add(Reply(reasoning="abc", content="hello", tool_calls=[("read_file", {"p": 1})]))
    evs = events(post(fake_k2.base_url, body()))
    assert evs[-1] == "[DONE]"
    kinds = [next(iter(set(e["choices"][0]["delta"]) - {"role"}), None) for e in evs[:-2]]
    assert kinds == ["reasoning_content", "content", "tool_calls", "tool_calls"]
    head = evs[2]["choices"][0]["delta"]["tool_calls"][0]
    assert head["id"] == "functions.read_file:0" and head["function"]["name"] == "read_file"
    assert evs[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert evs[-2]["choices"][0]["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize(
    ("field", "keys"),
    [
        ("reasoning_content", {"reasoning_content"}),
        ("reasoning", {"reasoning"}),
        ("openrouter", {"reasoning", "reasoning_details"}),
    ],
)
def test_reasoning_field_per_host(fake_k2: FakeK2Server, field: str, keys: set[str]) -> None:
    fake_k2.add(Reply(reasoning="r", content="c", reasoning_field=field))
    first = events(post(fake_k2.base_url, body()))[0]["choices"][0]["delta"]
    assert set(first) - {"role"} == keys


def test_native_ids_count_over_the_conversation(fake_k2: FakeK2Server) -> None:
    fake_k2.add(Reply(reasoning="r", tool_calls=[("grep", {}), ("grep", {})]))
    history = [
        *USER,
        {
            "role": "assistant",
            "reasoning_content": "x",
            "tool_calls": [
                {
                    "id": "functions.ls:0",
                    "type": "function",
                    "function": {"name": "ls", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "functions.ls:0", "content": "ok"},
    ]
    evs = events(post(fake_k2.base_url, body(messages=history)))
    ids = [
        tc["id"]
        for e in evs[:-1]
        if e["choices"]
        for tc in e["choices"][0]["delta"].get("tool_calls", [])
        if "id" in tc
    ]
    assert ids == ["functions.grep:1", "functions.grep:2"]


@pytest.mark.parametrize("place", ["chunk", "final"])
def test_usage_placement(fake_k2: FakeK2Server, place: str) -> None:
    fake_k2.add(
        Reply(content="x", usage=place, prompt_tokens=7, cached_in="details", cached_tokens=3)
    )
    evs = events(post(fake_k2.base_url, body()))
    with_usage = [e for e in evs[:-1] if "usage" in e]
    assert len(with_usage) == 1
    assert with_usage[0]["usage"]["prompt_tokens_details"] == {"cached_tokens": 3}
    assert (with_usage[0]["choices"] == []) == (place == "final")


def test_cut_stream_has_no_done(fake_k2: FakeK2Server) -> None:
    fake_k2.add(Fault.cut(2))
    evs = events(post(fake_k2.base_url, body()))
    assert len(evs) == 2 and "[DONE]" not in evs


def test_leaked_tokens_replace_structured_calls(fake_k2: FakeK2Server) -> None:
    fake_k2.add(Reply(content="ok", tool_calls=[("ls", {"a": 1})], leak="content", chunk_size=1000))
    evs = events(post(fake_k2.base_url, body()))
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in evs[:-1])
    assert "<|tool_call_begin|>functions.ls:0<|tool_call_argument_begin|>" in text
    assert not any("tool_calls" in e["choices"][0]["delta"] for e in evs[:-1])


@pytest.mark.parametrize(
    ("fault", "status", "needle"),
    [
        (Fault.http(429, "engine_overloaded_error", "busy"), 429, "engine_overloaded_error"),
        (Fault.http(429, "rate_limit_reached_error", "x", openrouter=True), 429, "metadata"),
        (Fault.http(503, "server_error", "down"), 503, "down"),
    ],
)
def test_http_faults(fake_k2: FakeK2Server, fault: Fault, status: int, needle: str) -> None:
    fake_k2.add(fault)
    resp = post(fake_k2.base_url, body())
    assert resp.status_code == status and needle in resp.text


def test_exhausted_script_answers_500(fake_k2: FakeK2Server) -> None:
    resp = post(fake_k2.base_url, body())
    assert resp.status_code == 500 and "script exhausted" in resp.text


TOOL_MSG = {
    "role": "assistant",
    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}],
}


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            {"messages": [*USER, TOOL_MSG, {"role": "tool", "tool_call_id": "c1", "content": "x"}]},
            "reasoning_content is missing in assistant tool call message at index 1",
        ),
        ({"messages": [{"role": "user", "content": ""}]}, "must not be empty"),
        ({"messages": [*USER, {**TOOL_MSG, "reasoning_content": "r"}]}, "has no tool message"),
        ({"temperature": 1.5}, "temperature"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"thinking": True}, "thinking must be an object"),
        ({"thinking": {"type": "enabled"}, "reasoning_effort": "high"}, "cannot be used together"),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "bad name", "parameters": {"type": "object"}},
                    }
                ]
            },
            "invalid",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {"type": "object", "properties": {"m": {"enum": ["a"]}}},
                        },
                    }
                ]
            },
            "type is not defined",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {
                                "type": "object",
                                "properties": {"m": {"$ref": "#/$defs/M"}},
                            },
                        },
                    }
                ]
            },
            "$ref",
        ),
    ],
)
def test_validation_rejects_like_a_real_host(
    fake_k2: FakeK2Server, extra: dict[str, Any], needle: str
) -> None:
    fake_k2.add(Reply(content="never sent"))
    resp = post(fake_k2.base_url, body(**extra))
    assert resp.status_code == 400
    assert needle in resp.json()["error"]["message"]
    assert fake_k2.remaining == 1 and fake_k2.rejected


def test_records_requests_auth_presence_and_missing_max_tokens(fake_k2: FakeK2Server) -> None:
    fake_k2.add(Reply(content="a"), Reply(content="b"))
    post(fake_k2.base_url, body())
    no_max = body()
    del no_max["max_tokens"]
    post(fake_k2.base_url, no_max, key=None)
    assert fake_k2.auth == [True, False]
    assert fake_k2.missing_max_tokens == [1]
    assert "sk-x" not in json.dumps(fake_k2.requests)


def test_unknown_model_is_404_and_models_lists_context() -> None:
    with FakeK2Server([Reply(content="x")], models=["kimi-k2-thinking"]) as srv:
        resp = post(srv.base_url, body(model="nope"))
        assert resp.status_code == 404
        data = fetch(f"{srv.base_url}/models").json()["data"]
        assert data[0]["id"] == "kimi-k2-thinking" and data[0]["context_length"] == 262_144


def test_non_stream_reply(fake_k2: FakeK2Server) -> None:
    fake_k2.add(Reply(reasoning="r", content="c"))
    msg = post(fake_k2.base_url, body(stream=False)).json()["choices"][0]["message"]
    assert msg["reasoning_content"] == "r" and msg["content"] == "c"


def test_hold_stalls_until_release(fake_k2: FakeK2Server) -> None:
    fake_k2.add(Reply(reasoning="waiting", content="done", hold=True))
    result: list[Resp] = []
    t = threading.Thread(target=lambda: result.append(post(fake_k2.base_url, body())))
    t.start()
    assert fake_k2.wait_held(30)
    assert not result
    fake_k2.release()
    t.join(30)
    assert events(result[0])[-1] == "[DONE]"


def test_script_file_served_from_a_subprocess(tmp_path: Any) -> None:
    script = tmp_path / "s.json"
    script.write_text(
        json.dumps(
            [
                {"content": "from file", "chunk_size": 100},
                {
                    "fault": "http",
                    "status": 429,
                    "type": "engine_overloaded_error",
                    "message": "busy",
                },
            ]
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "k2lsp.fake.server", "--script", str(script)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")
        evs = events(post(base, body()))
        assert evs[0]["choices"][0]["delta"]["content"] == "from file"
        assert post(base, body()).status_code == 429
    finally:
        proc.kill()
        proc.wait(10)
