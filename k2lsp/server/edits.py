"""A run's ChangeSet -> one WorkspaceEdit, checked against what the editor holds now.

The editor's current state of each changed file (the open buffer with its version, else the
disk) is handed to the one delivery planner (`k2lsp.runs.plan`, the rules the CLI uses too);
this module only maps its per-file plan to LSP: minimal line edits on the planned buffer
version (`TextDocumentEdit`), `CreateFile`/`DeleteFile`/`RenameFile` when the client takes
resource operations, else disk operations (`k2lsp.runs.fallback`). A conflict anywhere means
nothing at all is applied and the caller saves the patch. Never overwrite.

Every path goes through `k2lsp.runs.workspace.Workspace`: a path leading out of the workspace (a
`..`, a symlinked folder pointing elsewhere) or ending in a symlink is a conflict, and so is an
existing file that is not UTF-8 text (it is never taken for an absent one).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from k2lsp.errors import PathError
from k2lsp.runs.changes import ChangeSet
from k2lsp.runs.fallback import entry
from k2lsp.runs.plan import Current, Incoming, Step
from k2lsp.runs.plan import plan_delivery as plan_steps
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
    path = entry(ws, rel)
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


_NOT_TEXT = "it exists in your folder but is not UTF-8 text; k2lsp will not replace it"


def _encoding(ls: LanguageServer) -> str:
    enc = ls.workspace.position_encoding
    return str(getattr(enc, "value", enc) or "utf-16")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogatepass")


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "surrogatepass")


def _states(
    ls: LanguageServer, root: Path, changes: ChangeSet
) -> tuple[dict[str, DocState], dict[str, Current]]:
    """The editor's state of every path the (text) changes touch, as the planner's input."""
    docs: dict[str, DocState] = {}
    current: dict[str, Current] = {}
    for change in changes.files:
        if change.binary:
            continue
        for rel in dict.fromkeys((change.old_path or change.path, change.path)):
            if rel in current:
                continue
            try:
                state = current_state(ls, root, rel)
            except PathError as exc:
                current[rel] = Current(None, refused=str(exc))
                continue
            docs[rel] = state
            refused = _NOT_TEXT if state.binary else ""
            current[rel] = Current(_bytes(state.text), state.version, refused)
    return docs, current


@dataclass
class _Mapper:
    """Builds the WorkspaceEdit of a plan for one client."""

    plan: Plan
    docs: dict[str, DocState]
    versioned: bool
    res_ops: set[str]
    enc: str
    doc_changes: list[Any] = field(default_factory=list)
    plain: dict[str, list[types.TextEdit]] = field(default_factory=dict)

    def step(self, step: Step) -> None:
        plan = self.plan
        if step.action == "skip":
            plan.skipped.append(step.path)
            return
        if step.action == "conflict":
            plan.conflicts.append(step.path)
            if not step.clash:  # clashes are reported together as "could not be merged"
                plan.reasons[step.path] = step.reason
            return
        if step.merged:
            plan.merged.append(step.path)
        if step.action == "rename" and step.old_path is not None:
            self.rename(step, step.old_path)
            return
        state, text = self.docs[step.path], _text(step.after)
        plan.before[step.path], plan.after[step.path] = state.text, text
        plan.seen[step.path] = state
        if text == state.text:
            return
        if state.text is None or text is None:
            _plan_create_delete(state, step.path, text, plan, self.doc_changes, self.res_ops)
            return
        self.text_edit(state, line_edits(state.text, text, self.enc))

    def text_edit(self, state: DocState, edits: list[types.TextEdit]) -> None:
        if self.versioned:
            ident = types.OptionalVersionedTextDocumentIdentifier(
                uri=state.uri, version=state.version
            )
            self.doc_changes.append(types.TextDocumentEdit(text_document=ident, edits=edits))
        else:
            self.plain[state.uri] = edits

    def rename(self, step: Step, old_path: str) -> None:
        plan, old, new = self.plan, self.docs[old_path], self.docs[step.path]
        text = _text(step.after)
        plan.seen.update({old_path: old, step.path: new})
        plan.before.update({old_path: old.text, step.path: new.text})
        plan.after.update({old_path: None, step.path: text})
        if new.text is not None:  # already holds the result: only the old path goes
            _plan_create_delete(old, old_path, None, plan, self.doc_changes, self.res_ops)
            return
        if "rename" not in self.res_ops:
            plan.disk_writes[step.path] = text
            plan.disk_writes[old_path] = None
            return
        self.doc_changes.append(
            types.RenameFile(
                old_uri=old.uri, new_uri=new.uri, options=types.RenameFileOptions(overwrite=False)
            )
        )
        if text is not None and text != old.text:
            ident = types.OptionalVersionedTextDocumentIdentifier(uri=new.uri, version=None)
            edits = line_edits(old.text or "", text, self.enc)
            self.doc_changes.append(types.TextDocumentEdit(text_document=ident, edits=edits))


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
    docs, current = _states(ls, root, changes)
    steps = plan_steps([Incoming.of(fc) for fc in changes.files], current, skip_binary=True)
    mapper = _Mapper(Plan(), docs, versioned, res_ops, _encoding(ls))
    for step in steps.steps:
        mapper.step(step)
    if mapper.doc_changes:
        mapper.plan.edit = types.WorkspaceEdit(document_changes=mapper.doc_changes)
    elif mapper.plain:
        mapper.plan.edit = types.WorkspaceEdit(changes=mapper.plain)
    return mapper.plan


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
