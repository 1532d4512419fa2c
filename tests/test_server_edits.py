"""Delivery planning (ChangeSet -> WorkspaceEdit) against an editor state, without a process:
renames, creates and deletes with and without resource operations, rebase and conflict."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lsprotocol import types

from k2lsp.changes import ChangeSet, FileChange
from k2lsp.server.edits import inverse, plan_delivery, write_disk
from tests.lsp_fixtures import apply_text_edits


def _editor(docs: dict[str, tuple[int, str]], *, versioned: bool = True, ops: bool = True) -> Any:
    """The three things plan_delivery reads from a language server, as plain data."""
    kinds = (
        [
            types.ResourceOperationKind.Create,
            types.ResourceOperationKind.Delete,
            types.ResourceOperationKind.Rename,
        ]
        if ops
        else None
    )
    caps = types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(
            apply_edit=True,
            workspace_edit=types.WorkspaceEditClientCapabilities(
                document_changes=versioned, resource_operations=kinds
            ),
        )
    )
    text_documents = {
        uri: SimpleNamespace(source=text, version=version) for uri, (version, text) in docs.items()
    }
    workspace = SimpleNamespace(text_documents=text_documents, position_encoding="utf-16")
    return SimpleNamespace(client_capabilities=caps, workspace=workspace)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "a.py").write_text("one\ntwo\nthree\n", encoding="utf-8")
    return tmp_path


def test_rename_with_resource_operations_is_a_rename_then_an_edit(root: Path) -> None:
    change = FileChange("b.py", "one\ntwo\nthree\n", "one\n2\nthree\n", old_path="a.py")
    plan = plan_delivery(_editor({}), root, ChangeSet([change]))
    assert plan.conflicts == [] and plan.edit is not None
    ops = plan.edit.document_changes or []
    assert [type(o).__name__ for o in ops] == ["RenameFile", "TextDocumentEdit"]
    assert plan.before == {"a.py": "one\ntwo\nthree\n", "b.py": None}
    assert plan.after == {"a.py": None, "b.py": "one\n2\nthree\n"}


def test_rename_without_resource_operations_falls_back_to_disk(root: Path) -> None:
    change = FileChange("b.py", "one\ntwo\nthree\n", "one\n2\nthree\n", old_path="a.py")
    plan = plan_delivery(_editor({}, ops=False), root, ChangeSet([change]))
    assert plan.edit is None and plan.disk_writes == {"b.py": "one\n2\nthree\n", "a.py": None}
    write_disk(root, plan.disk_writes)
    assert not (root / "a.py").exists() and (root / "b.py").read_text() == "one\n2\nthree\n"


def test_rename_onto_an_existing_file_is_a_conflict(root: Path) -> None:
    (root / "b.py").write_text("mine\n", encoding="utf-8")
    change = FileChange("b.py", "one\ntwo\nthree\n", "x\n", old_path="a.py")
    assert plan_delivery(_editor({}), root, ChangeSet([change])).conflicts == ["b.py"]


def test_create_over_a_file_the_user_made_meanwhile_is_a_conflict(root: Path) -> None:
    (root / "new.py").write_text("user's\n", encoding="utf-8")
    plan = plan_delivery(_editor({}), root, ChangeSet([FileChange("new.py", None, "k2's\n")]))
    assert plan.conflicts == ["new.py"] and plan.edit is None


def test_open_buffer_wins_over_disk_and_is_rebased(root: Path) -> None:
    uri = (root / "a.py").as_uri()
    buffer = "one\ntwo\nthree\nfour (unsaved)\n"
    change = FileChange("a.py", "one\ntwo\nthree\n", "ONE\ntwo\nthree\n")
    plan = plan_delivery(_editor({uri: (7, buffer)}), root, ChangeSet([change]))
    assert plan.merged == ["a.py"] and plan.edit is not None
    edit = (plan.edit.document_changes or [])[0]
    assert isinstance(edit, types.TextDocumentEdit) and edit.text_document.version == 7
    assert apply_text_edits(buffer, list(edit.edits)) == "ONE\ntwo\nthree\nfour (unsaved)\n"


def test_plain_changes_for_clients_without_document_changes(root: Path) -> None:
    change = FileChange("a.py", "one\ntwo\nthree\n", "one\ntwo\n3\n")
    plan = plan_delivery(_editor({}, versioned=False), root, ChangeSet([change]))
    assert plan.edit is not None and plan.edit.document_changes is None
    (edits,) = (plan.edit.changes or {}).values()
    assert apply_text_edits("one\ntwo\nthree\n", list(edits)) == "one\ntwo\n3\n"


def test_utf16_positions_at_end_of_a_file_without_final_newline(root: Path) -> None:
    old = "x = '😀'"  # the emoji is two UTF-16 units
    (root / "e.py").write_text(old, encoding="utf-8")
    plan = plan_delivery(_editor({}), root, ChangeSet([FileChange("e.py", old, "x = '😀!'")]))
    assert plan.edit is not None
    edit = (plan.edit.document_changes or [])[0]
    assert isinstance(edit, types.TextDocumentEdit)
    assert edit.edits[0].range.end == types.Position(line=0, character=8)
    assert apply_text_edits(old, list(edit.edits)) == "x = '😀!'"


def test_binary_changes_are_reported_not_delivered(root: Path) -> None:
    change = FileChange("img.png", None, None, binary=True)
    plan = plan_delivery(_editor({}), root, ChangeSet([change]))
    assert plan.skipped == ["img.png"] and plan.edit is None


def test_inverse_undoes_creates_deletes_and_edits() -> None:
    before = {"a.py": "1\n", "new.py": None, "gone.py": "g\n"}
    after = {"a.py": "2\n", "new.py": "n\n", "gone.py": None}
    undo = {c.path: (c.old_text, c.new_text, c.kind) for c in inverse(before, after).files}
    assert undo == {
        "a.py": ("2\n", "1\n", "modified"),
        "new.py": ("n\n", None, "deleted"),
        "gone.py": (None, "g\n", "created"),
    }
