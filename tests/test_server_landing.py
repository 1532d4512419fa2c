"""A delivery lands on the text the user has now, or not at all: the real server over stdio
against editors that type while the edit is on its way, refuse stale versions, or skip them
silently and still answer `applied`."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types

from k2lsp.fake.server import FakeK2Server, Reply
from k2lsp.runs.merge import holds
from tests.lsp_fixtures import FIX_ADD, Editor

pytestmark = pytest.mark.timeout(180)

CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
FIXED = CALC.replace("a - b", "a + b")
TYPED_MUL = CALC.replace("a * b", "a * b  # typed")  # far from the fix: merges
TYPED_ADD = CALC.replace("a - b", "a - b  # typed")  # on the fixed line: conflicts


async def _fix(editor: Editor, fake: FakeK2Server) -> dict[str, object]:
    fake.add(Reply(tool_calls=[FIX_ADD]), Reply(content="add adds."))
    started = await editor.command("k2lsp.task", {"task": "fix add"})
    return await editor.finished(started["runId"])


def _type_once(editor: Editor, uri: str, text: str) -> None:
    """The user's keystroke reaches the editor just before the edit does (once)."""

    def hook() -> None:
        if editor.docs[uri][1] != text:
            editor.change(uri, text)

    editor.before_apply = hook


async def test_stale_version_is_planned_again_over_the_users_typing(
    editor: Editor, fake: FakeK2Server
) -> None:
    uri = editor.open("calc.py")
    _type_once(editor, uri, TYPED_MUL)
    info = await _fix(editor, fake)
    assert info["outcome"] == "success" and info["delivery"] == "merged", info
    assert editor.text("calc.py") == FIXED.replace("a * b", "a * b  # typed")
    versions = [
        c.text_document.version
        for e in editor.applied
        for c in e.document_changes or []
        if isinstance(c, types.TextDocumentEdit)
    ]
    assert versions == [1, 2]  # the first (stale) edit was refused, the second landed


async def test_stale_version_on_the_same_line_is_a_conflict_never_an_overwrite(
    editor: Editor, fake: FakeK2Server
) -> None:
    uri = editor.open("calc.py")
    _type_once(editor, uri, TYPED_ADD)
    info = await _fix(editor, fake)
    assert info["outcome"] == "edit_conflict" and info["delivery"] == "conflict", info
    assert editor.text("calc.py") == TYPED_ADD
    last = editor.deliveries[-1]
    assert last["status"] == "conflict" and Path(last["patchPath"]).is_file()
    assert "return a + b" in Path(last["patchPath"]).read_text()


async def test_an_editor_that_skips_a_stale_edit_but_says_applied_is_caught(
    editor: Editor, fake: FakeK2Server
) -> None:
    """Stock Neovim skips a stale versioned edit with a print and answers applied=true."""
    uri = editor.open("calc.py")
    real = editor.handle_apply
    calls: list[int] = []

    def skip_when_stale(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        calls.append(1)
        if len(calls) == 1:
            editor.change(uri, TYPED_MUL)  # typed; the edit's version is now stale
            return types.ApplyWorkspaceEditResult(applied=True)
        return real(params)

    editor.handle_apply = skip_when_stale  # type: ignore[method-assign]
    info = await _fix(editor, fake)
    assert len(calls) == 2, calls
    assert info["delivery"] == "merged", info
    assert editor.text("calc.py") == FIXED.replace("a * b", "a * b  # typed")


async def test_an_editor_that_says_applied_but_changes_nothing_gets_a_clear_report(
    editor: Editor, fake: FakeK2Server
) -> None:
    editor.open("calc.py")
    editor.handle_apply = lambda params: types.ApplyWorkspaceEditResult(applied=True)  # type: ignore[method-assign]
    info = await _fix(editor, fake)
    assert info["outcome"] == "edit_conflict" and info["delivery"] == "refused", info
    assert editor.text("calc.py") == CALC
    assert "calc.py does not hold it" in editor.deliveries[-1]["message"]


async def test_a_deleted_open_file_is_pinned_to_the_version_the_server_saw(
    editor: Editor, fake: FakeK2Server
) -> None:
    uri = editor.open("calc.py")
    _type_once(editor, uri, TYPED_MUL)
    fake.add(Reply(tool_calls=[("delete_file", {"path": "calc.py"})]), Reply(content="gone"))
    started = await editor.command("k2lsp.task", {"task": "remove calc"})
    info = await editor.finished(started["runId"])
    # the user's typing made the file differ from what the run deleted: it is kept
    assert info["outcome"] == "edit_conflict", info
    assert (editor.root / "calc.py").exists() and editor.text("calc.py") == TYPED_MUL
    first = editor.applied[0].document_changes or []
    assert isinstance(first[0], types.TextDocumentEdit) and list(first[0].edits) == []
    assert first[0].text_document.version == 1 and isinstance(first[1], types.DeleteFile)


@pytest.mark.parametrize(
    ("before", "now", "after", "expected"),
    [
        (CALC, FIXED, FIXED, True),
        (CALC, FIXED.replace("a * b", "a * b  # typed"), FIXED, True),
        (CALC, TYPED_MUL, FIXED, False),  # the edit was skipped
        (CALC, CALC, FIXED, False),
        (CALC, TYPED_ADD, FIXED, False),
        (None, "x\n", "x\n", True),
        (None, None, "x\n", False),
        (CALC, None, None, True),
    ],
)
def test_holds_tells_whether_the_change_is_in_the_text(
    before: str | None, now: str | None, after: str | None, expected: bool
) -> None:
    assert holds(before, now, after) is expected
