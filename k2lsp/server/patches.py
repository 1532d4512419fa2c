"""`k2lsp.applyPatch`: apply a saved patch (a rejected or conflicting part of a run) later.

The patch is applied to what the editor holds now (open buffers, else the disk), each hunk
found by its context lines like the `apply_patch` tool does; then it is delivered like a run's
change: versioned edits through `workspace/applyEdit`, planned again if the user types while it
is sent, checked to have landed. A hunk that does not match applies nothing at all, and the
error names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from k2lsp.errors import EditConflict, K2lspError, PathError, UsageError
from k2lsp.runs.changes import ChangeSet, FileChange
from k2lsp.server.commands import first_arg
from k2lsp.server.edits import current_state
from k2lsp.server.failure import command_error

if TYPE_CHECKING:
    from k2lsp.server.app import K2LanguageServer

_MAX_PATCH_BYTES = 8 << 20
_DEV_NULL = "/dev/null"


def saved_patches(ls: K2LanguageServer) -> Path:
    """The folder k2lsp saves patches in (`k2lsp.runs.patchfile`'s rule)."""
    from k2lsp.runs.patchfile import patches_dir
    from k2lsp.server.config import state_dir

    return patches_dir(state_dir(ls.run_settings()))


def _pick(ls: K2LanguageServer, args: dict[str, Any]) -> Path:
    raw = args.get("path")
    if raw is not None and not isinstance(raw, str):
        raise UsageError('pass the patch as {"path": "/path/to/file.patch"}')
    if raw:
        path = Path(raw).expanduser()
        if path.is_absolute():
            return path
        return ls.root() / path
    found = sorted(saved_patches(ls).glob("*.patch"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UsageError(f'no saved patch in {saved_patches(ls)}; pass {{"path": ...}}')
    return found[-1]


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()[: _MAX_PATCH_BYTES + 1]
    except OSError as exc:
        raise UsageError(f"cannot read the patch {path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_PATCH_BYTES:
        raise UsageError(f"{path} is larger than 8 MiB; not a k2lsp patch")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text; not a k2lsp patch") from None


def _name(name: str) -> str:
    name = name.strip().split("\t", 1)[0]
    return name[2:] if name.startswith(("a/", "b/")) else name


def changes_of(ls: K2LanguageServer, root: Path, text: str, where: Path) -> ChangeSet:
    """The change set that applying the patch `text` to the editor's text now means."""
    import unidiff

    from k2lsp.tools.patch import apply_hunks, normalize_patch

    try:
        patch_set = unidiff.PatchSet(normalize_patch(text))
    except unidiff.UnidiffParseError as exc:
        raise UsageError(f"{where} is not a unified diff ({exc})") from None
    if not len(patch_set):
        raise UsageError(f"{where} names no file (no ---/+++ headers)")
    files: list[FileChange] = []
    failures: list[str] = []
    for pf in patch_set:
        source, target = _name(pf.source_file), _name(pf.target_file)
        rel = target if target != _DEV_NULL else source
        state = current_state(ls, root, source if source != _DEV_NULL else rel)
        if state.binary:
            failures.append(f"{rel} is not UTF-8 text in your folder")
            continue
        if source == _DEV_NULL:
            if state.text is not None:
                failures.append(f"{rel} already exists; the patch creates it")
                continue
            body = "".join(ln.value for h in pf for ln in h if ln.line_type == "+")
            files.append(FileChange(rel, None, body))
            continue
        if state.text is None:
            failures.append(f"{source} does not exist in your folder")
            continue
        new, _notes, failed = apply_hunks(state.text, list(pf), source)
        failures += failed
        if target == _DEV_NULL:
            if new.strip():
                failures.append(f"{source}: the patch deletes it but the file holds more")
            else:
                files.append(FileChange(source, state.text, None))
        elif target != source:
            failures.append(f"{source}: renames are not applied from a patch; rename it first")
        elif new != state.text:
            files.append(FileChange(rel, state.text, new))
    if failures:
        raise EditConflict(
            f"the patch {where} does not apply to your files now; nothing was applied:\n- "
            + "\n- ".join(failures)
        )
    return ChangeSet(files)


async def apply_patch(ls: K2LanguageServer, raw: tuple[Any, ...]) -> dict[str, Any]:
    """k2lsp.applyPatch ``{path?}`` -> ``{path, applied}``."""
    from k2lsp.server.review import land

    try:
        path = _pick(ls, first_arg(raw))
        root = ls.root()
        try:
            changes = changes_of(ls, root, _read(path), path)
        except PathError as exc:
            raise EditConflict(f"the patch {path} was not applied: {exc}") from None
        if not changes:
            raise UsageError(f"{path} is already applied (it changes nothing now)")
        plan, why = await land(ls, root, changes, f"K2: apply {path.name}")
        if plan is None:
            raise EditConflict(f"the patch {path} was not applied: {why}")
    except K2lspError as exc:  # answered as the request's error: the editor shows it once
        raise command_error(exc) from None
    applied = sorted(set(plan.after))
    ls.show(f"K2: applied {path} to {', '.join(applied)}")
    return {"path": str(path), "applied": applied}
