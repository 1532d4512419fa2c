"""Review per hunk over LSP (pytest-lsp against the real server and the fake K2 host).

With `preview` and `reviewHunks`, a run's proposal arrives as `k2lsp/review` hunks; nothing is
shown in a document or asked with a modal question; each hunk is accepted (applied at once,
versioned, merged over the user's typing) or rejected; the rest is saved as a patch that
`k2lsp.applyPatch` applies later with the same checks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from k2lsp.fake.server import FakeK2Server, Reply
from tests.lsp_fixtures import FIX_ADD, Editor, make_project, start_editor, stop_editor

pytestmark = pytest.mark.timeout(180)

FIX_MUL = ("edit_file", {"path": "calc.py", "old_text": "return a * b", "new_text": "return b * a"})
NOTES = ("create_file", {"path": "notes.txt", "content": "remember\n"})
OPTIONS = {"preview": True, "reviewHunks": True}


@pytest.fixture
async def editor(tmp_path: Path, fake: FakeK2Server) -> AsyncIterator[Editor]:
    root = make_project(tmp_path / "proj")
    ed = await start_editor(root, fake.base_url, tmp_path / "home", init_options=OPTIONS)
    yield ed
    await stop_editor(ed)


async def _review(ed: Editor, fake: FakeK2Server, *calls: Any) -> tuple[str, dict[str, Any]]:
    fake.add(Reply(reasoning="edit", tool_calls=list(calls)), Reply(content="done"))
    ed.open("calc.py")
    started = await ed.command("k2lsp.task", {"task": "fix calc"})
    await ed.wait_for(lambda: any(r["runId"] == started["runId"] for r in ed.reviews))
    return started["runId"], next(r for r in ed.reviews if r["runId"] == started["runId"])


def _hunk(review: dict[str, Any], old: str) -> dict[str, Any]:
    for f in review["files"]:
        for h in f["hunks"]:
            if any(old in line for line in h["oldLines"]):
                return h
    raise AssertionError(f"no hunk removing {old!r} in {review}")


async def test_accept_one_hunk_reject_the_other_then_apply_the_saved_patch(
    editor: Editor, fake: FakeK2Server
) -> None:
    run_id, review = await _review(editor, fake, FIX_ADD, FIX_MUL)
    (calc,) = review["files"]
    assert calc["path"] == "calc.py" and calc["kind"] == "modified"
    assert [h["newLines"] for h in calc["hunks"]] == [["    return a + b"], ["    return b * a"]]
    # nothing applied, no diff document, no question while the review waits
    assert editor.applied == [] and editor.questions == []
    assert editor.client.shown_documents == [] or all(
        not d.uri.endswith(".diff") for d in editor.client.shown_documents
    )
    fix, mul = _hunk(review, "a - b"), _hunk(review, "a * b")
    answer = await editor.command("k2lsp.accept", {"hunks": [fix["id"]]})
    assert answer["accepted"] == [fix["id"]] and answer["pending"] == [mul["id"]]
    assert "return a + b" in editor.text("calc.py") and "return a * b" in editor.text("calc.py")
    answer = await editor.command("k2lsp.reject", {"runId": run_id, "hunks": [mul["id"]]})
    assert answer["rejected"] == [mul["id"]] and answer["pending"] == []
    info = await editor.finished(run_id)
    assert info["delivery"] == "applied"
    final = [d for d in editor.deliveries if d["runId"] == run_id][-1]
    assert "applied 1 of 2 change(s) in calc.py; 1 rejected" in final["message"]
    patch = Path(final["patchPath"])
    assert patch.exists() and str(patch) in final["message"]
    assert "-    return a * b\n+    return b * a\n" in patch.read_text()
    assert "a - b" not in patch.read_text()  # only the rejected hunk is left in it
    # later, after more typing above it, the saved patch still applies through the editor
    uri = editor.uri("calc.py")
    editor.change(uri, "# calc\n" + editor.text("calc.py"))
    res = await editor.command("k2lsp.applyPatch", {"path": str(patch)})
    assert res["applied"] == ["calc.py"]
    text = editor.text("calc.py")
    assert text.startswith("# calc\n") and "return a + b" in text and "return b * a" in text
    # applied once: the second time it no longer matches and nothing changes
    with pytest.raises(Exception, match="does not apply"):
        await editor.command("k2lsp.applyPatch", {"path": str(patch)})
    assert editor.text("calc.py") == text


async def test_a_hunk_whose_lines_changed_is_a_conflict_and_nothing_is_written(
    editor: Editor, fake: FakeK2Server
) -> None:
    run_id, review = await _review(editor, fake, FIX_ADD, FIX_MUL)
    fix, mul = _hunk(review, "a - b"), _hunk(review, "a * b")
    uri = editor.uri("calc.py")
    mine = editor.text("calc.py").replace("return a - b", "return a - b - 0")
    editor.change(uri, mine)
    answer = await editor.command("k2lsp.accept", {"hunks": [fix["id"]]})
    assert answer["accepted"] == [] and [c["id"] for c in answer["conflicts"]] == [fix["id"]]
    assert "changed in the editor" in answer["conflicts"][0]["reason"]
    assert editor.text("calc.py") == mine and editor.applied == []
    # typing elsewhere does not stop another hunk: it is merged over the typing
    answer = await editor.command("k2lsp.accept", {})
    assert answer["accepted"] == [mul["id"]]
    assert editor.text("calc.py") == mine.replace("return a * b", "return b * a")
    info = await editor.finished(run_id)
    assert info["delivery"] == "applied"
    final = [d for d in editor.deliveries if d["runId"] == run_id][-1]
    assert "1 not applied" in final["message"]
    assert "+    return a + b" in Path(final["patchPath"]).read_text()
    # k2lsp.undo takes back what the review applied, and only that
    undone = await editor.command("k2lsp.undo", {"runId": run_id})
    assert undone["restored"] == ["calc.py"] and editor.text("calc.py") == mine


async def test_cancel_during_a_review_applies_nothing_more(
    editor: Editor, fake: FakeK2Server
) -> None:
    run_id, review = await _review(editor, fake, FIX_ADD, FIX_MUL)
    before = editor.text("calc.py")
    assert (await editor.command("k2lsp.cancel", {}))["cancelled"] == [run_id]
    info = await editor.finished(run_id)
    assert info["outcome"] == "cancelled" and editor.applied == []
    assert editor.text("calc.py") == before
    with pytest.raises(Exception, match="no preview is waiting"):
        await editor.command("k2lsp.accept", {"hunks": [review["files"][0]["hunks"][0]["id"]]})


async def test_reject_all_saves_everything_and_new_files_are_whole_file_hunks(
    editor: Editor, fake: FakeK2Server
) -> None:
    run_id, review = await _review(editor, fake, FIX_ADD, NOTES)
    kinds = {f["path"]: f["kind"] for f in review["files"]}
    assert kinds == {"calc.py": "modified", "notes.txt": "created"}
    with pytest.raises(Exception, match="has no hunk 99"):
        await editor.command("k2lsp.accept", {"hunks": [99]})
    await editor.command("k2lsp.reject", {})
    info = await editor.finished(run_id)
    assert info["delivery"] == "rejected" and editor.applied == []
    final = [d for d in editor.deliveries if d["runId"] == run_id][-1]
    patch = Path(final["patchPath"]).read_text()
    assert "+    return a + b" in patch and "+++ b/notes.txt" in patch
    assert not (editor.root / "notes.txt").exists()
    res = await editor.command("k2lsp.applyPatch", {})  # the newest saved patch
    assert res["applied"] == ["calc.py", "notes.txt"]
    assert "return a + b" in editor.text("calc.py")
    assert (editor.root / "notes.txt").read_text() == "remember\n"
