"""Accepted hunks are checkpointed like any delivery: `k2lsp undo` (the CLI) takes them back.

Per-hunk review (`k2lsp.server.review`) lands each accept through the same send loop as a
run's delivery (`k2lsp.server.send`), which records an undo checkpoint before the edit is sent.
Real server over stdio (pytest-lsp), the fake K2 host, a real git repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from k2lsp.cli.undo import cli_undo
from k2lsp.fake.server import FakeK2Server, Reply
from k2lsp.runs.checkpoint import list_checkpoints
from tests.lsp_fixtures import FIX_ADD, make_project, start_editor, stop_editor

pytestmark = pytest.mark.timeout(180)

FIX_MUL = ("edit_file", {"path": "calc.py", "old_text": "return a * b", "new_text": "return b * a"})


def _git_project(root: Path) -> Path:
    from git_helpers import git

    make_project(root)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


async def test_cli_undo_takes_back_accepted_hunks_one_accept_at_a_time(
    tmp_path: Path, fake: FakeK2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _git_project(tmp_path / "proj")
    original = (root / "calc.py").read_text(encoding="utf-8")
    fake.add(Reply(reasoning="edit", tool_calls=[FIX_ADD, FIX_MUL]), Reply(content="done"))
    ed = await start_editor(
        root,
        fake.base_url,
        tmp_path / "home",
        init_options={"preview": True, "reviewHunks": True},
    )
    try:
        uri = ed.open("calc.py")
        typed = "# typed, not saved\n" + original
        ed.change(uri, typed)
        run_id = (await ed.command("k2lsp.task", {"task": "fix calc"}))["runId"]
        await ed.wait_for(lambda: any(r["runId"] == run_id for r in ed.reviews))
        review = next(r for r in ed.reviews if r["runId"] == run_id)
        fix, mul = review["files"][0]["hunks"]
        assert (await ed.command("k2lsp.accept", {"hunks": [fix["id"]]}))["accepted"]
        after_fix = ed.text("calc.py")
        assert (await ed.command("k2lsp.accept", {"hunks": [mul["id"]]}))["accepted"]
        after_both = ed.text("calc.py")
        assert (await ed.finished(run_id))["delivery"] == "applied"
    finally:
        await stop_editor(ed)
    assert "return a + b" in after_fix and "return a * b" in after_fix
    assert "return a + b" in after_both and "return b * a" in after_both
    labels = [m["label"] for m in list_checkpoints(root) if not m["undone"]]
    assert sum(f"accept hunks of {run_id}" in label for label in labels) == 2
    (root / "calc.py").write_text(after_both, encoding="utf-8")  # the user saves
    assert cli_undo(["--repo", str(root)]) == 0  # the last accept
    assert (root / "calc.py").read_text(encoding="utf-8") == after_fix
    assert cli_undo(["--repo", str(root)]) == 0  # the first: the user's unsaved text is back
    assert (root / "calc.py").read_text(encoding="utf-8") == typed
    assert "restored calc.py" in capsys.readouterr().out
