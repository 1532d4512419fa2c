"""The one delivery planner (`k2lsp.runs.plan`): its per-file rules, and that the CLI (working
tree on disk) and the editor (open buffers) get the same plan for the same state."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from git_helpers import make_repo, write
from lsprotocol import types

from k2lsp.runs.apply import plan_on_disk
from k2lsp.runs.changes import ChangeSet, FileChange
from k2lsp.runs.plan import CANNOT_COMBINE, SAME_LINES, Current, Incoming, plan_delivery
from k2lsp.runs.runcopy import RunCopy
from k2lsp.runs.workspace import Workspace
from k2lsp.server.edits import plan_delivery as editor_plan
from tests.lsp_fixtures import apply_text_edits

BODY = "".join(f"line {i}\n" for i in range(1, 13))


def _line(text: str, n: int, new: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[n - 1] = new + "\n"
    return "".join(lines)


def _b(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


# (user's state now, run's change) -> (action, result)
CASES = {
    "untouched file gets the run's text": (
        BODY,
        FileChange("a.py", BODY, _line(BODY, 2, "run")),
        "write",
        _line(BODY, 2, "run"),
    ),
    "disjoint edits are merged": (
        _line(BODY, 11, "user"),
        FileChange("a.py", BODY, _line(BODY, 2, "run")),
        "merge",
        _line(_line(BODY, 11, "user"), 2, "run"),
    ),
    "same change on both sides is already there": (
        _line(BODY, 2, "run"),
        FileChange("a.py", BODY, _line(BODY, 2, "run")),
        "unchanged",
        _line(BODY, 2, "run"),
    ),
    "created file": (None, FileChange("a.py", None, "new\n"), "create", "new\n"),
    "deleted file": (BODY, FileChange("a.py", BODY, None), "delete", None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_planner_rules(name: str) -> None:
    ours, change, action, result = CASES[name]
    plan = plan_delivery([Incoming.of(change)], {"a.py": Current(_b(ours))})
    (step,) = plan.steps
    assert (step.action, step.after) == (action, _b(result)) and plan.conflicts == {}
    assert step.before == _b(ours) and step.merged == (action == "merge")


@pytest.mark.parametrize(
    ("ours", "change", "reason"),
    [
        (_line(BODY, 2, "user"), FileChange("a.py", BODY, _line(BODY, 2, "run")), SAME_LINES),
        ("user's own\n", FileChange("a.py", None, "run's\n"), CANNOT_COMBINE),
        (_line(BODY, 2, "user"), FileChange("a.py", BODY, None), CANNOT_COMBINE),
    ],
)
def test_overlapping_or_incompatible_changes_conflict(
    ours: str, change: FileChange, reason: str
) -> None:
    plan = plan_delivery([Incoming.of(change)], {"a.py": Current(_b(ours))})
    assert plan.conflicts == {"a.py": reason} and plan.steps[0].clash


def test_a_refused_path_is_a_conflict_with_the_front_ends_reason() -> None:
    change = FileChange("a.py", BODY, _line(BODY, 2, "run"))
    plan = plan_delivery([Incoming.of(change)], {"a.py": Current(None, refused="a symlink")})
    assert plan.conflicts == {"a.py": "a symlink"} and not plan.steps[0].clash


def test_rename_carries_the_users_edits_and_refuses_to_overwrite() -> None:
    change = FileChange("b.py", BODY, _line(BODY, 2, "run"), old_path="a.py")
    mine = _line(BODY, 11, "user")
    plan = plan_delivery([Incoming.of(change)], {"a.py": Current(_b(mine), version=3)})
    (step,) = plan.steps
    assert (step.action, step.old_path, step.old_before, step.old_version) == (
        "rename",
        "a.py",
        _b(mine),
        3,
    )
    assert step.after == _b(_line(mine, 2, "run")) and step.merged
    taken = {"a.py": Current(_b(BODY)), "b.py": Current(b"mine\n")}
    assert (
        "already has a different b.py"
        in plan_delivery([Incoming.of(change)], taken).conflicts["b.py"]
    )


def test_binary_changes_are_skipped_only_when_asked() -> None:
    inc = Incoming("img.bin", b"\0old", b"\0new", binary=True)
    assert plan_delivery([inc], {}, skip_binary=True).steps[0].action == "skip"
    assert plan_delivery([inc], {"img.bin": Current(b"\0old")}).steps[0].action == "write"
    clash = plan_delivery([inc], {"img.bin": Current(b"\0user")})
    assert clash.conflicts == {"img.bin": CANNOT_COMBINE}


def _editor(root: Path, docs: dict[str, tuple[int, str]]) -> Any:
    caps = types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(
            apply_edit=True,
            workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True),
        )
    )
    text_documents = {
        (root / rel).as_uri(): SimpleNamespace(source=text, version=version)
        for rel, (version, text) in docs.items()
    }
    workspace = SimpleNamespace(text_documents=text_documents, position_encoding="utf-16")
    return SimpleNamespace(client_capabilities=caps, workspace=workspace)


def test_the_cli_and_the_editor_plan_the_same_delivery(tmp_path: Path) -> None:
    """The same user state, once on disk (CLI) and once in open buffers (editor): the same
    merges, the same conflicts, the same resulting texts."""
    files = {"m.py": BODY, "c.py": BODY, "same.py": BODY}
    repo = make_repo(tmp_path / "repo", files)
    rc = RunCopy.create(repo, "plan", state_dir=tmp_path / "state")
    write(
        rc.root,
        {"m.py": _line(BODY, 2, "run"), "c.py": _line(BODY, 5, "run"), "same.py": BODY + "x\n"},
    )
    changes = rc.changes()
    users = {"m.py": _line(BODY, 11, "user"), "c.py": _line(BODY, 5, "user")}
    write(repo, users)
    cli = plan_on_disk(rc, Workspace(repo), changes)
    write(repo, files)  # the disk back at the start: the user's edits now live in buffers
    editor = editor_plan(
        _editor(repo, {rel: (4, text) for rel, text in users.items()}), repo, changes
    )
    assert set(cli.conflicts) == set(editor.conflicts) == {"c.py"}
    assert [s.path for s in cli.steps if s.merged] == editor.merged == ["m.py"]
    ok = ChangeSet([c for c in changes.files if c.path != "c.py"])
    editor = editor_plan(_editor(repo, {"m.py": (4, users["m.py"])}), repo, ok)
    assert editor.edit is not None
    landed = {}
    for edit in editor.edit.document_changes or []:
        assert isinstance(edit, types.TextDocumentEdit)
        rel = Path(edit.text_document.uri.removeprefix("file://")).name
        start = users["m.py"] if rel == "m.py" else files[rel]
        landed[rel] = apply_text_edits(start, list(edit.edits)).encode()
    assert landed == {s.path: s.after for s in cli.steps if s.path in landed}
    rc.cleanup()
