"""End-to-end: approvals asked with window/showMessageRequest, and failing tests published as
k2lsp diagnostics that offer "K2: Fix failing test"."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from lsprotocol import types

from k2lsp.fake.server import FakeK2Server, Reply
from tests.lsp_fixtures import (
    FIX_ADD,
    Editor,
    code_action_params,
    make_project,
    start_editor,
    stop_editor,
)

pytestmark = pytest.mark.timeout(240)
FIRST = ("run_command", {"command": "echo first-ran"})
SECOND = ("run_command", {"command": "echo second-ran"})


def _tool_texts(fake: FakeK2Server) -> list[str]:
    last = fake.requests[-1]["messages"]
    return [str(m["content"]) for m in last if m["role"] == "tool"]


async def _two_commands(
    tmp_path: Path,
    fake: FakeK2Server,
    answers: list[str],
    expect: str = "success",
    **options: object,
) -> Editor:
    fake.add(
        Reply(reasoning="run one", tool_calls=[FIRST]),
        Reply(reasoning="run two", tool_calls=[SECOND]),
        Reply(reasoning="done", content="Ran them."),
    )
    ed = await start_editor(
        make_project(tmp_path / "proj"),
        fake.base_url,
        tmp_path / "home",
        init_options=dict(options),
    )
    ed.approvals = list(answers)
    try:
        run_id = (await ed.command("k2lsp.task", {"task": "run the commands"}))["runId"]
        assert (await ed.finished(run_id))["outcome"] == expect
    finally:
        await stop_editor(ed)
    return ed


async def test_allow_once_then_deny(tmp_path: Path, fake: FakeK2Server) -> None:
    ed = await _two_commands(tmp_path, fake, ["Allow once", "Deny"])
    assert len(ed.questions) == 2
    question = ed.questions[0]
    assert "echo first-ran" in question.message and question.type == types.MessageType.Warning
    assert [a.title for a in question.actions or []] == ["Allow once", "Allow for this run", "Deny"]
    first, second = _tool_texts(fake)
    assert "first-ran" in first
    assert "declined" in second and "second-ran" not in second.replace("echo second-ran", "")


async def test_allow_for_this_run_asks_once(tmp_path: Path, fake: FakeK2Server) -> None:
    ed = await _two_commands(tmp_path, fake, ["Allow for this run"])
    assert len(ed.questions) == 1
    first, second = _tool_texts(fake)
    assert "first-ran" in first and "second-ran" in second


async def test_policy_mode_never_asks_and_refuses(tmp_path: Path, fake: FakeK2Server) -> None:
    # nothing ran and nothing changed: the run is no_change, not success
    ed = await _two_commands(tmp_path, fake, ["Allow once"], "no_change", approvals="policy")
    assert ed.questions == []
    assert all(
        "not allowed by the approval policy" in t or "declined" in t for t in _tool_texts(fake)
    )


async def test_allow_list_runs_without_asking(tmp_path: Path, fake: FakeK2Server) -> None:
    ed = await _two_commands(tmp_path, fake, [], allowCommands=["echo *"])
    assert ed.questions == []
    assert ["first-ran" in t for t in _tool_texts(fake)] == [True, False]
    assert "second-ran" in _tool_texts(fake)[1]


async def test_failing_tests_become_diagnostics_that_offer_a_fix(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    run_tests = ("run_tests", {"command": f"{sys.executable} -m pytest -q -p no:cacheprovider"})
    fake.add(
        Reply(reasoning="run the tests", tool_calls=[run_tests]),
        Reply(reasoning="fix add", tool_calls=[FIX_ADD], hold=True),
        Reply(reasoning="again", tool_calls=[run_tests]),
        Reply(reasoning="green", content="Fixed; tests pass."),
    )
    ed = await start_editor(make_project(tmp_path / "proj"), fake.base_url, tmp_path / "home")
    try:
        uri = ed.open("tests/test_calc.py")
        run_id = (await ed.command("k2lsp.task", {"task": "make the tests pass"}))["runId"]
        assert await asyncio.to_thread(fake.wait_held, 120)
        await ed.wait_for(lambda: bool(ed.client.diagnostics.get(uri)))
        diag = ed.client.diagnostics[uri][0]
        assert diag.source == "k2lsp" and diag.range.start.line == 4
        assert "test_add" in diag.message and diag.severity == types.DiagnosticSeverity.Error
        actions = await ed.client.text_document_code_action_async(
            code_action_params(uri, (4, 0), (4, 0), [diag])
        )
        assert actions is not None
        titles = [a.title for a in actions]
        assert len(titles) == 1 and titles[0].startswith("K2: Fix failing test")
        fake.release()
        assert (await ed.finished(run_id))["outcome"] == "success"
        await ed.wait_for(lambda: list(ed.client.diagnostics.get(uri, [None])) == [])
    finally:
        await stop_editor(ed)
