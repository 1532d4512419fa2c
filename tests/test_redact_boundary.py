"""The redaction boundary: a model that puts the user's API key in its reasoning and final
answer, and a task that contains it, leave no trace of the key — whole or cut short — in
anything that leaves the process: LSP messages of every kind, the transcript file, the
headless CLI's stdout and stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY, make_k2_env

from k2lsp.fake.script import Reply
from k2lsp.fake.server import FakeK2Server
from k2lsp.redact import MARKER, may_change_json, register_secret
from k2lsp.redact.boundary import lsp_body, lsp_message, safe_text
from tests.lsp_fixtures import API_KEY, FIX_ADD, make_project, start_editor, stop_editor
from tests.test_redact import SECRETS as TEST_SECRETS

pytestmark = pytest.mark.timeout(180)


def hostile_answer(key: str) -> Reply:
    """A final answer with the key whole, and once more where the 500-character showMessage
    cut falls in the middle of it."""
    head = f"Your key is {key}. "
    pad = "x" * (495 - len(head))
    return Reply(
        reasoning=f"The user's key is {key}; I will print it.\n",
        content=head + pad + key + " and that is all.",
        chunk_size=5,
    )


def assert_no_key(text: str, key: str, where: str) -> None:
    for n in range(12, len(key) + 1):
        assert key[:n] not in text, f"{n} characters of the key reached {where}"


def record_wire(client: Any) -> list[str]:
    """Every message the client receives, as JSON text."""
    seen: list[str] = []
    original = client.protocol.structure_message

    def hook(data: dict[str, Any]) -> Any:
        if "jsonrpc" in data:
            seen.append(json.dumps(data))
        return original(data)

    client.protocol.structure_message = hook
    return seen


async def test_answer_reasoning_and_task_never_reach_the_editor_with_the_key(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    root = make_project(tmp_path / "proj")
    fake.add(hostile_answer(API_KEY))
    fake.add(Reply(tool_calls=[FIX_ADD]), Reply(content=f"Done; the key was {API_KEY}."))
    ed = await start_editor(root, fake.base_url, tmp_path / "home")
    wire = record_wire(ed.client)
    try:
        ed.open("calc.py")
        asked = await ed.command("k2lsp.ask", {"question": "what is my key?"})
        info = await ed.finished(asked["runId"])
        assert info["outcome"] == "success"
        task = await ed.command("k2lsp.task", {"task": f"fix add; my key is {API_KEY}"})
        info = await ed.finished(task["runId"])
        assert info["delivery"] == "applied"
        await ed.wait_for(lambda: len(ed.deliveries) >= 2)
    finally:
        await stop_editor(ed)
    everything = "\n".join(wire)
    assert_no_key(everything, API_KEY, "the LSP wire")
    shown = [m.message for m in ed.client.messages]
    assert any(MARKER in m for m in shown)  # the answer was shown, redacted
    assert any("Your key is" in d["message"] for d in ed.deliveries)
    assert ed.text("calc.py").count("return a + b") == 1  # the edit itself arrived intact
    for transcript in (tmp_path / "home" / "state" / "k2lsp" / "transcripts").glob("*.md"):
        body = transcript.read_text(encoding="utf-8")
        assert_no_key(body, API_KEY, str(transcript))
        assert MARKER in body


@pytest.mark.parametrize("json_mode", [False, True], ids=["terminal", "json"])
def test_headless_output_never_carries_the_key(
    tmp_path: Path, fake: FakeK2Server, json_mode: bool
) -> None:
    repo = make_project(tmp_path / "proj")
    fake.add(hostile_answer(TEST_KEY))
    env = make_k2_env(fake.base_url)
    env.update(XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_STATE_HOME=str(tmp_path / "st"))
    args = ["--task", f"what is {TEST_KEY}?", "--mode", "ask", "--repo", str(repo)]
    done = subprocess.run(
        [sys.executable, "-m", "k2lsp", *args, *(["--json"] if json_mode else [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert_no_key(done.stdout, TEST_KEY, "stdout")
    assert_no_key(done.stderr, TEST_KEY, "stderr")
    assert MARKER in done.stdout + done.stderr


@pytest.mark.parametrize(("lo", "hi"), [(0, 12), (0, 30), (20, 40), (28, 40), (5, 20), (13, 28)])
def test_every_cut_piece_of_a_registered_key_is_removed(lo: int, hi: int) -> None:
    key = "sk-boundary-cut-0123456789abcdefghijklmn"  # 40 characters
    register_secret(key)
    out = safe_text(f"before {key[lo:hi]} after")
    assert key[lo:hi] not in out and out == f"before {MARKER} after"


def test_apply_edit_keeps_the_document_text_and_redacts_the_label() -> None:
    key = "sk-boundary-unit-0123456789abcdefgh"
    register_secret(key)
    edit = {"changes": {"file:///a.py": [{"newText": f"KEY = {key!r}\n"}]}}
    msg = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "workspace/applyEdit",
        "params": {"label": f"K2: {key}", "edit": edit},
    }
    out = lsp_message(msg)
    assert out["params"]["edit"] == edit and key not in out["params"]["label"]
    note = {"jsonrpc": "2.0", "method": "window/showMessage", "params": {"message": key[:20]}}
    assert key[:20] not in json.dumps(lsp_message(note))
    assert safe_text("nothing secret here") == "nothing secret here"


GATE_CASES = [
    *[f"\n{s}" for s in TEST_SECRETS],
    'API_KEY =\n"Zk3mQ9xT2bV7nL4p"',
    "password: 'hunter2hunter2'",
    'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
    "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
    "see postgres://admin:s3cretPassw0rd@db:5432/app",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    "the key is sk-boundary-gate-0123456789abcdef cut here",
    "cut: sk-boundary-gate-01234",
    "tail of output: ry-gate-0123456789abcdef",
    "middle: y-gate-0123456789",
]


@pytest.mark.parametrize("text", GATE_CASES)
@pytest.mark.parametrize("ascii_only", [True, False])
def test_the_cheap_gate_never_lets_a_redactable_string_through(text: str, ascii_only: bool) -> None:
    register_secret("sk-boundary-gate-0123456789abcdef")
    message = {"jsonrpc": "2.0", "method": "window/logMessage", "params": {"message": "é" + text}}
    body = json.dumps(message, ensure_ascii=ascii_only)
    assert safe_text(message["params"]["message"]) != message["params"]["message"]
    assert may_change_json(body)
    assert "sk-boundary-gate-0123" not in lsp_body(body)


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "2.0", "method": "$/progress", "params": {"token": "k2lsp-r1", "value": {}}},
        {"jsonrpc": "2.0", "id": 4, "result": {"runId": "r1", "transcriptUri": "file:///t.md"}},
        {"jsonrpc": "2.0", "method": "window/logMessage", "params": {"message": "tests: 3 passed"}},
    ],
)
def test_ordinary_messages_skip_the_per_string_pass(message: dict[str, Any]) -> None:
    body = json.dumps(message)
    assert not may_change_json(body) and lsp_body(body) is body


def test_log_lines_leave_through_the_boundary() -> None:
    import io
    import logging

    from k2lsp.redact.boundary import redact_log_handlers

    key = "sk-boundary-log-0123456789abcdefghij"
    register_secret(key)
    stream = io.StringIO()
    logger = logging.getLogger("k2lsp.test.boundary")
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(stream))
    redact_log_handlers(logger)
    try:
        raise RuntimeError(f"host said: bad key {key}")
    except RuntimeError:
        logger.exception("request failed with %s", key[:20])
    assert_no_key(stream.getvalue(), key, "the log")
    assert "host said" in stream.getvalue() and MARKER in stream.getvalue()
