"""A run's ChangeSet -> one WorkspaceEdit, checked against what the editor holds now.

Each changed file is compared with the editor's current state (the open buffer with its
version, else the disk). Unchanged since the run started: the change applies as minimal
line edits on that version. Moved on: the change is rebased three-way (`k2lsp.runs.merge.merge3`);
if that conflicts, nothing at all is applied and the caller saves the patch. Never overwrite.

Every path goes through `k2lsp.runs.workspace.Workspace`: a path leading out of the workspace (a
`..`, a symlinked folder pointing elsewhere) or ending in a symlink is a conflict, and so is an
existing file that is not UTF-8 text (it is never taken for an absent one).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from k2lsp.errors import PathError
from k2lsp.runs.changes import ChangeSet, FileChange
from k2lsp.runs.workspace import Workspace, decode_text

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


@dataclass
class DocState:
    """What the editor holds for a path now: text (None = absent) and buffer version."""

    uri: str
    text: str | None
    version: int | None  # None: not open in the editor
    binary: bool = False  # exists, but not as UTF-8 text (binary, undecodable, a folder)


@dataclass
class Plan:
    """What delivering a change set means now."""

    edit: types.WorkspaceEdit | None = None
    disk_writes: dict[str, str | None] = field(default_factory=dict)  # fallback ops; None=delete
    conflicts: list[str] = field(default_factory=list)  # paths that could not be merged
    reasons: dict[str, str] = field(default_factory=dict)  # conflict path -> why, when known
    merged: list[str] = field(default_factory=list)  # paths rebased over the user's edits
    skipped: list[str] = field(default_factory=list)  # binary files (not deliverable by LSP)
    before: dict[str, str | None] = field(default_factory=dict)  # state replaced (for undo)
    after: dict[str, str | None] = field(default_factory=dict)  # state produced
    seen: dict[str, DocState] = field(default_factory=dict)  # path -> the state planned against


def split_lines(text: str) -> list[str]:
    """LSP lines with their endings (\\n, \\r\\n or \\r only)."""
    return _LINE.findall(text)


def _width(s: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(s.encode("utf-8"))
    if encoding == "utf-32":
        return len(s)
    return len(s.encode("utf-16-le")) // 2


def _position(lines: list[str], i: int, encoding: str) -> types.Position:
    if i < len(lines):
        return types.Position(line=i, character=0)
    if not lines:
        return types.Position(line=0, character=0)
    last = lines[-1]
    if last.endswith(("\n", "\r")):
        return types.Position(line=len(lines), character=0)
    return types.Position(line=len(lines) - 1, character=_width(last, encoding))


def line_edits(old: str, new: str, encoding: str = "utf-16") -> list[types.TextEdit]:
    """Minimal whole-line TextEdits turning `old` into `new` (non-overlapping, in order)."""
    a, b = split_lines(old), split_lines(new)
    out: list[types.TextEdit] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        rng = types.Range(start=_position(a, i1, encoding), end=_position(a, i2, encoding))
        out.append(types.TextEdit(range=rng, new_text="".join(b[j1:j2])))
    return out


def current_state(ls: LanguageServer, root: Path, rel: str) -> DocState:
    """The editor's view of `rel`: its open buffer, else the file on disk.

    PathError when `rel` leads out of the workspace or is a symlink (never written through).
    """
    ws = Workspace(root)
    path = _entry(ws, rel)
    for uri in dict.fromkeys((path.as_uri(), (ws.root / rel).as_uri())):
        doc = ls.workspace.text_documents.get(uri)
        if doc is not None:
            return DocState(uri, doc.source, doc.version)
    uri = path.as_uri()
    if not path.exists():
        return DocState(uri, None, None)
    if not path.is_file():
        return DocState(uri, None, None, binary=True)
    try:
        return DocState(uri, decode_text(path.read_bytes(), rel), None)
    except PathError:
        return DocState(uri, None, None, binary=True)
    except OSError as exc:
        raise PathError(f"{rel} cannot be read: {exc}") from None


def _entry(ws: Workspace, rel: str) -> Path:
    """The confined path of `rel`; PathError if it is a symlink or a file blocks its folder."""
    path = ws.resolve_entry(rel)
    if path.is_symlink():
        raise PathError(f"{rel} is a symlink in your folder; k2lsp does not write through links")
    for folder in path.parents:
        if folder == ws.root or not folder.is_relative_to(ws.root):
            break
        if os.path.lexists(folder) and not folder.is_dir():
            raise PathError(
                f"your folder has a file at {ws.rel(folder)} where {rel} needs a folder"
            )
    return path


_NOT_TEXT = "it exists in your folder but is not UTF-8 text; k2lsp will not replace it"


def _encoding(ls: LanguageServer) -> str:
    enc = ls.workspace.position_encoding
    return str(getattr(enc, "value", enc) or "utf-16")


def _target(change: FileChange, state: DocState, plan: Plan) -> tuple[bool, str | None]:
    """(ok, text to produce) for one path, rebasing over the user's edits when needed."""
    base, wanted = change.old_text, change.new_text
    if state.binary:
        plan.reasons[change.path] = _NOT_TEXT
        return False, None  # an existing file k2lsp cannot read as text is never "absent"
    if state.text == base:
        return True, wanted
    if state.text == wanted:
        return True, wanted  # already there (e.g. the user made the same change)
    if base is None or wanted is None or state.text is None:
        return False, None  # created/deleted on both sides differently
    from k2lsp.runs.merge import merge3

    merged, conflicted = merge3(base, state.text, wanted)
    if conflicted:
        return False, None
    plan.merged.append(change.path)
    return True, merged


def plan_delivery(ls: LanguageServer, root: Path, changes: ChangeSet) -> Plan:
    """Compare every change with the editor's state and build the edit (or the conflicts)."""
    caps = ls.client_capabilities
    ws_edit = caps.workspace.workspace_edit if caps and caps.workspace else None
    versioned = bool(ws_edit and ws_edit.document_changes) or _quietly_versioned(ls)
    res_ops = (
        {str(getattr(k, "value", k)) for k in (ws_edit.resource_operations or [])}
        if ws_edit and versioned
        else set()
    )
    enc = _encoding(ls)
    plan = Plan()
    doc_changes: list[Any] = []
    plain: dict[str, list[types.TextEdit]] = {}
    for change in changes.files:
        if change.binary:
            plan.skipped.append(change.path)
            continue
        if change.kind == "renamed" and change.old_path:
            _plan_rename(ls, root, change, plan, doc_changes, res_ops, enc)
            continue
        try:
            state = current_state(ls, root, change.path)
        except PathError as exc:
            plan.conflicts.append(change.path)
            plan.reasons[change.path] = str(exc)
            continue
        ok, text = _target(change, state, plan)
        if not ok:
            plan.conflicts.append(change.path)
            continue
        plan.before[change.path], plan.after[change.path] = state.text, text
        plan.seen[change.path] = state
        if text == state.text:
            continue
        if state.text is None or text is None:
            _plan_create_delete(state, change.path, text, plan, doc_changes, res_ops)
            continue
        edits = line_edits(state.text, text, enc)
        if versioned:
            ident = types.OptionalVersionedTextDocumentIdentifier(
                uri=state.uri, version=state.version
            )
            doc_changes.append(types.TextDocumentEdit(text_document=ident, edits=edits))
        else:
            plain[state.uri] = edits
    if doc_changes:
        plan.edit = types.WorkspaceEdit(document_changes=doc_changes)
    elif plain:
        plan.edit = types.WorkspaceEdit(changes=plain)
    return plan


# Clients that apply `documentChanges` (versions, resource operations) without advertising it.
# Neovim (every release since 0.5) does; unversioned edits would land on whatever the buffer
# holds by then, so it gets versioned ones.
_APPLIES_DOCUMENT_CHANGES = ("Neovim",)


def _quietly_versioned(ls: LanguageServer) -> bool:
    return str(getattr(ls, "client_name", "")) in _APPLIES_DOCUMENT_CHANGES


def _plan_create_delete(
    state: DocState,
    rel: str,
    text: str | None,
    plan: Plan,
    doc_changes: list[Any],
    res_ops: set[str],
) -> None:
    if text is not None:  # create
        if "create" in res_ops:
            doc_changes.append(
                types.CreateFile(
                    uri=state.uri,
                    options=types.CreateFileOptions(overwrite=False, ignore_if_exists=False),
                )
            )
            ident = types.OptionalVersionedTextDocumentIdentifier(uri=state.uri, version=None)
            zero = types.Range(
                start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)
            )
            doc_changes.append(
                types.TextDocumentEdit(
                    text_document=ident, edits=[types.TextEdit(range=zero, new_text=text)]
                )
            )
        else:
            plan.disk_writes[rel] = text
    elif "delete" in res_ops:
        if state.version is not None:  # pins the buffer: a client refuses it once it moved on
            ident = types.OptionalVersionedTextDocumentIdentifier(
                uri=state.uri, version=state.version
            )
            doc_changes.append(types.TextDocumentEdit(text_document=ident, edits=[]))
        doc_changes.append(
            types.DeleteFile(
                uri=state.uri, options=types.DeleteFileOptions(ignore_if_not_exists=True)
            )
        )
    else:
        plan.disk_writes[rel] = None


def _plan_rename(
    ls: LanguageServer,
    root: Path,
    change: FileChange,
    plan: Plan,
    doc_changes: list[Any],
    res_ops: set[str],
    enc: str,
) -> None:
    assert change.old_path is not None
    try:
        old = current_state(ls, root, change.old_path)
        new = current_state(ls, root, change.path)
    except PathError as exc:
        plan.conflicts.append(change.path)
        plan.reasons[change.path] = str(exc)
        return
    if old.binary or new.binary:
        plan.conflicts.append(change.path)
        plan.reasons[change.path] = _NOT_TEXT
        return
    if old.text != change.old_text or new.text is not None:
        plan.conflicts.append(change.path)
        return
    plan.seen.update({change.old_path: old, change.path: new})
    plan.before.update({change.old_path: old.text, change.path: None})
    plan.after.update({change.old_path: None, change.path: change.new_text})
    if "rename" not in res_ops:
        plan.disk_writes[change.path] = change.new_text
        plan.disk_writes[change.old_path] = None
        return
    doc_changes.append(
        types.RenameFile(
            old_uri=old.uri, new_uri=new.uri, options=types.RenameFileOptions(overwrite=False)
        )
    )
    if change.new_text is not None and change.new_text != old.text:
        ident = types.OptionalVersionedTextDocumentIdentifier(uri=new.uri, version=None)
        doc_changes.append(
            types.TextDocumentEdit(
                text_document=ident, edits=line_edits(old.text or "", change.new_text, enc)
            )
        )


def check_disk(
    root: Path,
    writes: Mapping[str, str | None],
    expected: Mapping[str, str | None] | None = None,
) -> list[tuple[Path, str | None]]:
    """The confined targets of `write_disk`, or PathError (nothing written) naming why not.

    A create (text) needs an absent path: an existing file, folder or link is never replaced.
    A delete needs a regular file that still holds `expected[rel]` (when given), or nothing.
    """
    ws = Workspace(root)
    targets: list[tuple[Path, str | None]] = []
    for rel, text in writes.items():
        path = _entry(ws, rel)
        if text is not None and path.exists():
            raise PathError(f"{rel} already exists in your folder; k2lsp will not overwrite it")
        if text is None and path.exists():
            if not path.is_file():
                raise PathError(f"{rel} is not a regular file; k2lsp will not delete it")
            if expected is not None and rel in expected:
                want = expected[rel]
                if want is None or path.read_bytes() != want.encode("utf-8"):
                    raise PathError(f"{rel} changed on disk; k2lsp will not delete it")
        targets.append((path, text))
    return targets


def write_disk(
    root: Path,
    writes: Mapping[str, str | None],
    expected: Mapping[str, str | None] | None = None,
) -> None:
    """Apply fallback file operations (files the editor could not create/delete itself).

    Every path is checked first (`check_disk`); a create never replaces an existing file, even
    one that appeared since the check (exclusive create).
    """
    for path, text in check_disk(root, writes, expected):
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            raise PathError(f"{path} appeared meanwhile; k2lsp did not overwrite it") from None
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)


def inverse(plan_before: dict[str, str | None], plan_after: dict[str, str | None]) -> ChangeSet:
    """The change set that undoes a delivery (after -> before), for `k2lsp.undo`."""
    files = [
        FileChange(path=p, old_text=plan_after.get(p), new_text=plan_before.get(p))
        for p in sorted(set(plan_before) | set(plan_after))
        if plan_after.get(p) != plan_before.get(p)
    ]
    return ChangeSet(files)
