"""The editing tools record what they change; the run's change set comes from that record,
cross-checked against git (`k2lsp.runs.reconcile`), in a real run copy of a real repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from git_helpers import make_repo, write

from k2lsp.fs import safefs
from k2lsp.runs.reconcile import final_state, reconcile
from k2lsp.runs.runcopy import RunCopy
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext

CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
FILES = {
    "calc.py": CALC,
    "old_name.py": "def helper():\n    return 1\n",
    "obsolete.py": "x = 1\n",
    "notes.txt": "keep\n",
    ".gitignore": "build/\n",
}


async def _call(ctx: ToolContext, name: str, **args: Any) -> None:
    res = await build_registry().execute(name, args, ctx)
    assert res.ok, (name, res.text)


async def _multi_tool_run(ctx: ToolContext) -> None:
    """create_file, replace_symbol, edit_file, apply_patch (edit + rename), delete_file."""
    await _call(ctx, "create_file", path="pkg/new_mod.py", content="def new():\n    return 0\n")
    await _call(
        ctx, "replace_symbol", path="calc.py", symbol="add", code="def add(a, b):\n    return a + b"
    )
    await _call(ctx, "edit_file", path="calc.py", old_text="a * b", new_text="b * a")
    await _call(
        ctx,
        "apply_patch",
        patch=(
            "diff --git a/old_name.py b/new_name.py\n--- a/old_name.py\n+++ b/new_name.py\n"
            "@@ -1,2 +1,2 @@\n def helper():\n-    return 1\n+    return 2\n"
            "--- a/notes.txt\n+++ b/notes.txt\n@@ -1 +1,2 @@\n keep\n+added\n"
        ),
    )
    await _call(ctx, "delete_file", path="obsolete.py")
    await _call(ctx, "create_file", path="tmp.py", content="y = 2\n")  # made, then removed:
    await _call(ctx, "delete_file", path="tmp.py")  # no net change


async def test_recorded_change_set_equals_the_git_diff_of_a_multi_tool_run(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    rc = RunCopy.create(repo, "rec", state_dir=tmp_path / "state")
    try:
        ctx = ToolContext(rc.workspace())
        await _multi_tool_run(ctx)
        recorded, found = ctx.changes.net(), rc.changes()
        assert final_state(recorded) == final_state(found)
        assert final_state(found) == {
            "calc.py": CALC.replace("a - b", "a + b").replace("a * b", "b * a"),
            "new_name.py": "def helper():\n    return 2\n",
            "old_name.py": None,
            "notes.txt": "keep\nadded\n",
            "obsolete.py": None,
            "pkg/new_mod.py": "def new():\n    return 0\n",
        }
        assert {fc.path: fc.old_text for fc in recorded.files} == {
            "calc.py": CALC,  # the first old text: before both edits
            "new_name.py": None,
            "old_name.py": FILES["old_name.py"],
            "notes.txt": "keep\n",
            "obsolete.py": "x = 1\n",
            "pkg/new_mod.py": None,
        }
        changes, notes = reconcile(ctx.changes, found, lambda rel: safefs.read_entry(rc.root, rel))
        assert notes == [] and changes == found  # agreement: git's entries (rename, modes)
    finally:
        rc.cleanup()


async def test_disagreements_keep_the_union_and_are_noted(tmp_path: Path) -> None:
    """A command wrote a file, another changed a file after a tool did, a tool wrote an
    ignored file: all three are delivered, each with a note."""
    repo = make_repo(tmp_path / "repo", FILES)
    rc = RunCopy.create(repo, "rec2", state_dir=tmp_path / "state")
    try:
        ctx = ToolContext(rc.workspace())
        await _call(ctx, "edit_file", path="calc.py", old_text="a - b", new_text="a + b")
        await _call(ctx, "create_file", path="build/gen.py", content="GEN = 1\n")
        write(rc.root, {"snapshot.txt": "written by a test\n"})  # as a command in the sandbox
        write(rc.root, {"calc.py": CALC.replace("a - b", "a + b") + "# formatter\n"})
        changes, notes = reconcile(
            ctx.changes, rc.changes(), lambda rel: safefs.read_entry(rc.root, rel)
        )
        assert final_state(changes) == {
            "build/gen.py": "GEN = 1\n",
            "calc.py": CALC.replace("a - b", "a + b") + "# formatter\n",
            "snapshot.txt": "written by a test\n",
        }
        assert [fc.path for fc in changes.files if fc.untracked] == ["build/gen.py"]
        text = "\n".join(notes)
        assert "outside the editing tools" in text and "snapshot.txt" in text
        assert "calc.py changed again after the tools wrote it" in text
        assert "build/gen.py was changed by the tools but git does not track it" in text
        from k2lsp.runs.patchfile import make_patch

        patch = make_patch(rc, changes)
        assert "+++ b/build/gen.py" in patch and "+++ b/snapshot.txt" in patch
    finally:
        rc.cleanup()


async def test_a_file_only_the_tools_know_is_delivered_and_named(tmp_path: Path) -> None:
    """A tool wrote a file the user's .gitignore leaves out: `apply` writes it, `branch`
    commits the rest and says which file is only in the saved patch."""
    from git_helpers import git

    from k2lsp.errors import Outcome
    from k2lsp.runs.git import deliver

    repo = make_repo(tmp_path / "repo", FILES)
    rc = RunCopy.create(repo, "rec3", state_dir=tmp_path / "state")
    try:
        ctx = ToolContext(rc.workspace())
        await _call(ctx, "edit_file", path="calc.py", old_text="a - b", new_text="a + b")
        await _call(ctx, "create_file", path="build/gen.py", content="GEN = 1\n")
        changes, _ = reconcile(ctx.changes, rc.changes(), lambda r: safefs.read_entry(rc.root, r))
        branch = deliver(rc, changes, "branch", task="t")
        assert branch.outcome is Outcome.SUCCESS and "build/gen.py" in branch.message
        assert branch.patch_file is not None and "+GEN = 1" in branch.patch_file.read_text()
        assert git(repo, "ls-tree", "-r", "--name-only", branch.commit or "").split() == sorted(
            FILES
        )
        applied = deliver(rc, changes, "apply", task="t")
        assert applied.outcome is Outcome.SUCCESS, applied.message
        assert (repo / "build" / "gen.py").read_text() == "GEN = 1\n"
        assert "a + b" in (repo / "calc.py").read_text()
    finally:
        rc.cleanup()


async def test_the_repo_map_follows_the_journal_and_rescans_after_any_writer(
    tmp_path: Path,
) -> None:
    """The editing tools' record is also the repo map's journal: after them the map reads
    only the files they wrote; after a tool that may write anything (a command, an MCP tool)
    or a failed one, it scans everything again and sees what that tool wrote."""
    from pydantic import BaseModel

    from k2lsp.tools.base import ToolError, tool

    class NoArgs(BaseModel):
        pass

    repo = make_repo(tmp_path / "repo", FILES)
    rc = RunCopy.create(repo, "journal", state_dir=tmp_path / "state")
    try:
        ctx = ToolContext(rc.workspace())
        reg = build_registry().extended([])

        @tool("like_a_command", NoArgs, writes="any", registry=reg)
        def like_a_command(ctx: ToolContext, args: NoArgs) -> str:
            """Writes a source file behind the tools' back, as a test run's code generator."""
            write(rc.root, {"gen.py": "def generated_by_command():\n    pass\n"})
            return "done"

        @tool("fails_after_writing", NoArgs, writes="any", registry=reg)
        def fails_after_writing(ctx: ToolContext, args: NoArgs) -> str:
            """Writes, then fails."""
            write(rc.root, {"half.py": "def half_written():\n    pass\n"})
            raise ToolError("gave up half-way")

        async def map_text() -> str:
            res = await reg.execute("repo_map", {"max_tokens": 4096}, ctx)
            assert res.ok, res.text
            return res.text

        assert ctx.journal.pending() is None  # nothing known before the first look
        await map_text()
        await _call(ctx, "edit_file", path="calc.py", old_text="def mul", new_text="def times")
        await _call(ctx, "create_file", path="notes2.txt", content="x\n")
        assert ctx.journal.pending() == {"calc.py", "notes2.txt"}
        await _call(ctx, "edit_file", path="calc.py", old_text="def add", new_text="def plus")
        write(rc.root, {"obsolete.py": "def behind_the_back():\n    pass\n"})  # no tool did it
        text = await map_text()
        assert "plus" in text and "behind_the_back" not in text  # only the journal was read
        assert (await reg.execute("like_a_command", {}, ctx)).ok
        assert ctx.journal.pending() is None
        text = await map_text()
        assert "generated_by_command" in text and "behind_the_back" in text
        assert not (await reg.execute("fails_after_writing", {}, ctx)).ok
        assert ctx.journal.pending() is None
        assert "half_written" in await map_text()
    finally:
        rc.cleanup()
