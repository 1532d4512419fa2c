"""Delivery planning (ChangeSet -> WorkspaceEdit) against an editor state, without a process:
renames, creates and deletes with and without resource operations, rebase and conflict."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lsprotocol import types

from k2lsp.errors import PathError
from k2lsp.runs.changes import ChangeSet, FileChange, inverse
from k2lsp.runs.fallback import write_disk
from k2lsp.server.edits import plan_delivery
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


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("ops", [True, False])
def test_create_under_a_symlink_leading_out_of_the_workspace_is_a_conflict(
    tmp_path: Path, ops: bool
) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("theirs\n", encoding="utf-8")
    (root / "lib").symlink_to(outside, target_is_directory=True)
    change = FileChange("lib/x.py", None, "x = 1\n")
    plan = plan_delivery(_editor({}, ops=ops), root, ChangeSet([change]))
    assert plan.conflicts == ["lib/x.py"] and "outside the workspace" in plan.reasons["lib/x.py"]
    assert plan.edit is None and plan.disk_writes == {} and plan.before == {}
    with pytest.raises(PathError, match="outside the workspace"):
        write_disk(root, {"lib/x.py": "x = 1\n"})
    with pytest.raises(PathError, match="outside the workspace"):
        write_disk(root, {"lib/keep.txt": None})
    assert _files(outside) == {"keep.txt": b"theirs\n"}


def test_a_symlinked_file_is_never_written_through(tmp_path: Path) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "new.py").symlink_to(outside / "target.py")  # dangling: looks absent
    (root / "a.py").symlink_to(outside / "a.py")
    (outside / "a.py").write_text("one\n", encoding="utf-8")
    changes = ChangeSet([FileChange("new.py", None, "n\n"), FileChange("a.py", "one\n", "1\n")])
    for ops in (True, False):
        plan = plan_delivery(_editor({}, ops=ops), root, changes)
        assert sorted(plan.conflicts) == ["a.py", "new.py"] and plan.edit is None
        assert plan.disk_writes == {}
    with pytest.raises(PathError, match="symlink"):
        write_disk(root, {"new.py": "n\n"})
    assert _files(outside) == {"a.py": b"one\n"}


def test_a_file_where_the_change_needs_a_folder_is_a_conflict(root: Path) -> None:
    plan = plan_delivery(_editor({}, ops=False), root, ChangeSet([FileChange("a.py/x", None, "")]))
    assert plan.conflicts == ["a.py/x"] and "needs a folder" in plan.reasons["a.py/x"]
    assert plan.disk_writes == {}


@pytest.mark.parametrize("ops", [True, False])
def test_an_existing_file_that_is_not_utf8_is_not_taken_for_absent(root: Path, ops: bool) -> None:
    latin1 = "caf\xe9 = 1\n".encode("latin-1")  # e.g. untracked, so not in the run's snapshot
    (root / "new.py").write_bytes(latin1)
    (root / "blob.dat").write_bytes(b"\x00\x01 binary")
    changes = ChangeSet(
        [
            FileChange("new.py", None, "k2's\n"),  # created by the run
            FileChange("blob.dat", None, "text\n"),
        ]
    )
    plan = plan_delivery(_editor({}, ops=ops), root, changes)
    assert sorted(plan.conflicts) == ["blob.dat", "new.py"]
    assert "not UTF-8 text" in plan.reasons["new.py"]
    assert plan.edit is None and plan.disk_writes == {}
    rename = FileChange("new.py", "one\ntwo\nthree\n", "one\n", old_path="a.py")
    plan = plan_delivery(_editor({}, ops=ops), root, ChangeSet([rename]))
    assert plan.conflicts == ["new.py"] and plan.disk_writes == {}
    assert (root / "new.py").read_bytes() == latin1


def test_write_disk_never_creates_over_an_existing_file(root: Path) -> None:
    latin1 = "caf\xe9\n".encode("latin-1")
    (root / "old.txt").write_bytes(latin1)
    with pytest.raises(PathError, match="already exists"):
        write_disk(root, {"fresh.py": "f\n", "old.txt": "k2's\n"})
    assert (root / "old.txt").read_bytes() == latin1
    assert not (root / "fresh.py").exists()  # every path is checked before anything is written


def test_write_disk_deletes_only_what_the_plan_saw(root: Path) -> None:
    with pytest.raises(PathError, match="changed on disk"):
        write_disk(root, {"a.py": None}, {"a.py": "something else\n"})
    assert (root / "a.py").read_text(encoding="utf-8") == "one\ntwo\nthree\n"
    write_disk(root, {"a.py": None}, {"a.py": "one\ntwo\nthree\n"})
    assert not (root / "a.py").exists()


def test_neovim_gets_versioned_edits_though_it_does_not_advertise_them(root: Path) -> None:
    """Neovim applies documentChanges (and checks the version) without saying so."""
    change = FileChange("a.py", "one\ntwo\nthree\n", "one\n2\nthree\n")
    docs = {(root / "a.py").as_uri(): (7, "one\ntwo\nthree\n")}
    editor = _editor(docs, versioned=False)
    plain = plan_delivery(editor, root, ChangeSet([change]))
    assert plain.edit is not None and plain.edit.changes and not plain.edit.document_changes
    editor.client_name = "Neovim"
    plan = plan_delivery(editor, root, ChangeSet([change]))
    assert plan.edit is not None and plan.edit.changes is None
    (edit,) = plan.edit.document_changes or []
    assert isinstance(edit, types.TextDocumentEdit) and edit.text_document.version == 7


def test_rename_of_a_file_the_user_edited_carries_their_edits(root: Path) -> None:
    """The one planner's rule, as for the CLI: a rename moves the merged text."""
    uri = (root / "a.py").as_uri()
    buffer = "one\ntwo\nthree\nfour (unsaved)\n"
    change = FileChange("b.py", "one\ntwo\nthree\n", "ONE\ntwo\nthree\n", old_path="a.py")
    plan = plan_delivery(_editor({uri: (5, buffer)}), root, ChangeSet([change]))
    assert plan.conflicts == [] and plan.merged == ["b.py"] and plan.edit is not None
    rename, edit = plan.edit.document_changes or []
    assert isinstance(rename, types.RenameFile) and isinstance(edit, types.TextDocumentEdit)
    assert apply_text_edits(buffer, list(edit.edits)) == "ONE\ntwo\nthree\nfour (unsaved)\n"
    assert plan.after == {"a.py": None, "b.py": "ONE\ntwo\nthree\nfour (unsaved)\n"}
