"""Heavy mode in the language server over stdio: "(K2 heavy ×N)" code actions, and a heavy
task whose winner lands in the buffer through the normal delivery (real git, bwrap)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from heavy_helpers import MODEL, run_heavy_task, start_heavy_editor
from lsprotocol import types

from k2lsp.fake.server import FakeK2Server
from tests.lsp_fixtures import Editor, code_action_params, stop_editor

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def fake() -> AsyncIterator[FakeK2Server]:
    srv = FakeK2Server([], models=[MODEL])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
async def editor(tmp_path: Path, fake: FakeK2Server) -> AsyncIterator[Editor]:
    from k2lsp.sandbox import bwrap

    if bwrap.problem():
        pytest.skip(f"bwrap unavailable: {bwrap.problem()}")
    # the host interpreter the tests run with lives under the real HOME (bound into bwrap)
    home = {"HOME": os.environ.get("HOME")}
    ed = await start_heavy_editor(tmp_path, fake.base_url, "bwrap", env=home)
    yield ed
    await stop_editor(ed)


async def test_editing_actions_come_with_a_heavy_variant(editor: Editor) -> None:
    uri = editor.open("calc.py")
    diag = types.Diagnostic(
        range=types.Range(
            start=types.Position(line=5, character=4), end=types.Position(line=5, character=16)
        ),
        message="add subtracts",
        source="pyright",
    )
    params = code_action_params(uri, (3, 0), (6, 0), [diag])
    actions: list[Any] = await editor.client.text_document_code_action_async(params) or []
    titles = [a.title for a in actions]
    assert "K2: Fix add subtracts (K2 heavy ×3)" in titles
    assert "K2: Refactor… (K2 heavy ×3)" in titles
    assert not any("Explain" in t and "heavy" in t for t in titles)  # read-only: no variant
    heavy = next(a for a in actions if a.title.startswith("K2: Fix add") and "heavy" in a.title)
    assert heavy.command.arguments[0]["heavy"] == 3


async def test_heavy_task_delivers_the_winner_into_the_buffer(
    editor: Editor, fake: FakeK2Server, tmp_path: Path
) -> None:
    started, info = await run_heavy_task(editor, fake, timeout=240)
    assert info["outcome"] == "success" and info["delivery"] == "applied", info
    text = editor.text("calc.py")
    assert "return a + b" in text and "TypeError" not in text  # c3, not c2's rewrite
    events = editor.events(started["runId"])
    sel = next(e for e in events if e["type"] == "heavy_selected")
    assert sel["winner"] == "c3" and set(sel["excluded"]) == {"c1", "c2"}
    assert any(e["type"] == "status" and e["phase"] == "candidate" for e in events)
    assert {e["run_id"] for e in events} == {started["runId"]}  # only the heavy run's stream
    assert "TypeError" in next(r["diff"] for r in sel["candidates"] if r["candidate"] == "c2")
    runs = tmp_path / "home" / "state" / "k2lsp" / "runs"
    kept = sorted(p.name.rsplit("-", 1)[1] for p in runs.iterdir())
    assert kept == ["c1", "c2", "c3"]  # kept until one is taken or another heavy run ends
    # take c2 instead: refused while the winner is applied, then delivered after undo
    take = {"runId": started["runId"], "candidate": "c2"}
    with pytest.raises(Exception, match="undo it first"):
        await editor.command("k2lsp.takeCandidate", take)
    await editor.command("k2lsp.undo", {"runId": started["runId"]})
    assert "return a - b" in editor.text("calc.py")
    taken = await editor.command("k2lsp.takeCandidate", take)
    assert taken["delivery"] == "applied"
    assert "TypeError" in editor.text("calc.py")  # c2's rewrite, now in the buffer
    assert not list(runs.iterdir())
    with pytest.raises(Exception, match="no candidates are kept"):
        await editor.command("k2lsp.takeCandidate", take)


async def test_heavy_is_refused_for_read_only_commands(editor: Editor) -> None:
    uri = editor.open("calc.py")
    with pytest.raises(Exception, match="heavy mode is for editing commands"):
        await editor.command("k2lsp.ask", {"question": "what?", "uri": uri, "heavy": 2})
