"""What a client with no k2lsp code sees (eglot, Helix, Kate): a strict pytest-lsp client without
the `k2lsp/stream` opt-in gets meaningful `$/progress`, one Error message naming the host when
the provider fails, the fix action preferred, selection actions only on a real selection, and
a path wherever text is cut."""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
from pathlib import Path

import pytest
from lsprotocol import types

from k2lsp.fake.script import Fault
from k2lsp.fake.server import FakeK2Server, Reply
from k2lsp.redact.url import host_url
from k2lsp.server.failure import edit_label
from k2lsp.server.progress import Limits, describe_tool
from tests.lsp_fixtures import (
    API_KEY,
    FIX_ADD,
    code_action_params,
    make_project,
    start_editor,
    stop_editor,
)

pytestmark = pytest.mark.timeout(240)
MODEL = "kimi-k2-thinking"


def _reports(ed: object, run_id: str) -> list[types.WorkDoneProgressReport]:
    values = ed.client.progress_reports.get(f"k2lsp-{run_id}", [])  # type: ignore[attr-defined]
    return [v for v in values if isinstance(v, types.WorkDoneProgressReport)]


async def _until_ended(ed: object, run_id: str) -> None:
    token = f"k2lsp-{run_id}"
    await ed.wait_for(  # type: ignore[attr-defined]
        lambda: any(
            isinstance(v, types.WorkDoneProgressEnd)
            for v in ed.client.progress_reports.get(token, [])  # type: ignore[attr-defined]
        )
    )


def _script() -> list[Reply]:
    return [
        Reply(reasoning="Let me read it.", tool_calls=[("read_file", {"path": "calc.py"})]),
        Reply(reasoning="Subtracts; fix it.", tool_calls=[FIX_ADD]),
        Reply(reasoning="Check the tests.", tool_calls=[("search", {"pattern": "def test_"})]),
        Reply(reasoning="Done.", content="Fixed add()."),
    ]


@pytest.mark.parametrize("max_steps", [None, 8])
async def test_progress_says_what_happens_without_repeats_and_budget_share_only_with_budget(
    tmp_path: Path, max_steps: int | None
) -> None:
    root = make_project(tmp_path / "proj")
    options = {"maxSteps": max_steps} if max_steps else {}
    with FakeK2Server(_script(), models=[MODEL]) as srv:
        ed = await start_editor(
            root, srv.base_url, tmp_path / "home", stream=False, init_options=options
        )
        try:
            ed.open("calc.py")
            run_id = (await ed.command("k2lsp.task", {"task": "fix add"}))["runId"]
            info = await ed.finished(run_id)
            await _until_ended(ed, run_id)
        finally:
            await stop_editor(ed)
    assert info["delivery"] == "applied"
    begin = ed.client.progress_reports[f"k2lsp-{run_id}"][0]
    assert isinstance(begin, types.WorkDoneProgressBegin) and begin.message == "fix add"
    reports = _reports(ed, run_id)
    pairs = [(r.message, r.percentage) for r in reports]
    assert all(a != b for a, b in itertools.pairwise(pairs))  # never the same twice
    messages = [r.message or "" for r in reports]
    assert any("reading calc.py" in m for m in messages)
    assert any("editing calc.py" in m for m in messages)
    assert any("searching 'def test_'" in m for m in messages)
    assert all("tokens" in m for m in messages if m.startswith("step ") and "step 1" not in m)
    if max_steps is None:  # no budget set: no percentage at all (begin included)
        assert begin.percentage is None and all(r.percentage is None for r in reports)
        assert not any(" of " in m.split("·")[0] for m in messages)
    else:
        shares = [r.percentage for r in reports if r.percentage is not None]
        assert begin.percentage == 0 and shares == sorted(shares) and shares[-1] >= 25
        assert any(re.match(r"step [1-4] of 8 · ", m) for m in messages), messages


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("case", ["rejected key", "host down"])
async def test_provider_error_is_one_error_message_naming_the_host_and_the_fix(
    tmp_path: Path, case: str
) -> None:
    root = make_project(tmp_path / "proj")
    faults = [Fault.http(401, "invalid_authentication_error", "Invalid Authentication")]
    with FakeK2Server(faults, models=[MODEL]) as srv:
        base = srv.base_url if case == "rejected key" else f"http://127.0.0.1:{_dead_port()}/v1"
        env = {"K2LSP_BASE_URL": base}
        ed = await start_editor(root, srv.base_url, tmp_path / "home", stream=False, env=env)
        try:
            uri = ed.open("calc.py")
            run_id = (await ed.command("k2lsp.ask", {"question": "why?", "uri": uri}))["runId"]
            info = await ed.finished(run_id, timeout=200)
            await _until_ended(ed, run_id)
            await asyncio.sleep(0.3)  # anything shown late would show now
        finally:
            await stop_editor(ed)
    assert info["outcome"] == "provider_error"
    shown = [m for m in ed.client.messages if m.type != types.MessageType.Log]
    assert len(shown) == 1, [m.message for m in shown]
    msg = shown[0]
    assert msg.type == types.MessageType.Error
    assert base in msg.message and "K2LSP_BASE_URL" in msg.message
    if case == "rejected key":
        assert "K2LSP_API_KEY" in msg.message  # the fix: which variable holds the key
    for leak in (API_KEY, "Error(", "Exception", "Traceback", "K2: K2:"):
        assert leak not in msg.message


async def test_fix_for_another_servers_diagnostic_is_the_preferred_action(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    with FakeK2Server([], models=[MODEL]) as srv:
        ed = await start_editor(root, srv.base_url, tmp_path / "home", stream=False)
        try:
            uri = ed.open("calc.py")
            diag = types.Diagnostic(
                range=types.Range(
                    start=types.Position(line=1, character=4),
                    end=types.Position(line=1, character=16),
                ),
                message="F821 undefined name 'c'",
                source="ruff",
                code="F821",
            )
            params = code_action_params(uri, (1, 6), (1, 6), diagnostics=[diag])
            actions = await ed.client.text_document_code_action_async(params)
            blank = "\n\n\n"  # a selection of empty lines is no selection
            ed.change(uri, ed.docs[uri][1] + blank)
            empty = await ed.client.text_document_code_action_async(
                code_action_params(uri, (6, 0), (8, 0))
            )
        finally:
            await stop_editor(ed)
    assert actions is not None
    fixes = [a for a in actions if isinstance(a, types.CodeAction) and a.is_preferred]
    assert [a.title for a in fixes] == ["K2: Fix F821 undefined name 'c'"]
    assert actions[0] is fixes[0]  # eglot's default is the first preferred action
    assert fixes[0].command is not None
    sent = fixes[0].command.arguments[0]["diagnostic"]
    assert sent["source"] == "ruff" and sent["code"] == "F821"
    assert not empty


async def test_cut_answer_names_the_transcript_and_apply_label_has_one_prefix(
    tmp_path: Path,
) -> None:
    root = make_project(tmp_path / "proj")
    long_answer = "It subtracts. " * 80
    replies = [Reply(reasoning="look", content=long_answer), Reply(tool_calls=[FIX_ADD])]
    replies.append(Reply(content="Fixed."))
    with FakeK2Server(replies, models=[MODEL]) as srv:
        ed = await start_editor(root, srv.base_url, tmp_path / "home", stream=False)
        try:
            uri = ed.open("calc.py")
            ask = await ed.command("k2lsp.ask", {"question": "why?", "uri": uri})
            await ed.finished(ask["runId"])
            task = await ed.command("k2lsp.task", {"task": "fix add", "uri": uri})
            await ed.finished(task["runId"])
        finally:
            await stop_editor(ed)
    cut = next(m.message for m in ed.client.messages if "…" in m.message)
    transcript = Path(ask["transcriptUri"].removeprefix("file://"))
    assert f"in {transcript})" in cut and long_answer.strip() in transcript.read_text()
    assert ed.labels and all(label and label.count("K2:") == 1 for label in ed.labels)


def test_units_limits_tool_words_labels_and_urls() -> None:
    from k2lsp.config.model import Settings

    assert Limits.from_settings(Settings()) == Limits()
    limits = Limits.from_settings(Settings(max_steps=20, budget_usd=0.5, timeout_s=60))
    assert limits == Limits(steps=20, usd=0.5, seconds=60)
    assert describe_tool("run_tests", {}) == "running tests"
    assert (
        describe_tool("run_command", {"command": "make  -j4\ncheck"}) == "running 'make -j4 check'"
    )
    assert describe_tool("mystery", None) == "running mystery"
    assert edit_label("K2: K2: Fix") == "K2: Fix" and edit_label("undo 1") == "K2: undo 1"
    assert host_url("https://user:sk-secret@host.example:8443/v1?key=sk-x") == (
        "https://host.example:8443/v1"
    )
