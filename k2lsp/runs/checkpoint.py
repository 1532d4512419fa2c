"""Checkpoints: the exact bytes (and modes) of files just before k2lsp writes them, and undo.

A checkpoint is a folder `<id>/` holding `manifest.json` and one blob per file that existed.
For a git repository it lives in `<git common dir>/k2lsp/checkpoints/` (it travels with the
repository and `k2lsp undo` finds it from anywhere inside; the index, stash list, HEAD and
branches are never touched); for any other folder in `<state_dir>/checkpoints/<hash>/`.

The manifest records, per path, whether it existed, its mode and sha256; once the delivery has
written, `seal` records the sha256 of what it wrote. Undo restores the previous bytes only if
every file still holds what the delivery wrote, and refuses naming the files otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k2lsp.errors import EditConflict, UsageError
from k2lsp.runs import gitcmd
from k2lsp.runs.workspace import Workspace

KEEP_CHECKPOINTS = 100


@dataclass
class UndoResult:
    """What an undo did."""

    checkpoint: str
    restored: list[str] = field(default_factory=list)  # files given back their previous bytes
    deleted: list[str] = field(default_factory=list)  # files the delivery had created
    message: str = ""

    @property
    def ok(self) -> bool:
        """Undo succeeded (refusals raise instead)."""
        return True


def checkpoint_dir(source: Path | str, state_dir: Path | str | None = None) -> Path:
    """Where checkpoints of `source` are kept."""
    from k2lsp.runs.runcopy import default_state_dir

    src = Path(source).expanduser().resolve()
    if not src.is_dir():
        raise UsageError(f"{source} is not a folder; pass --repo with the folder k2lsp wrote to")
    if gitcmd.toplevel(src) is not None:
        return gitcmd.common_dir(src) / "k2lsp" / "checkpoints"
    key = hashlib.sha1(str(src).encode("utf-8")).hexdigest()[:16]
    return default_state_dir(state_dir) / "checkpoints" / key


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def read_entry(path: Path) -> tuple[bytes | None, int | None]:
    """Bytes and mode of `path` (a symlink's target text for links); (None, None) if absent."""
    if path.is_symlink():
        return os.fsencode(os.readlink(path)), stat.S_IFLNK | 0o777
    if path.is_file():
        return path.read_bytes(), path.stat().st_mode
    return None, None


def current_digest(path: Path) -> str | None:
    """sha256 of what `path` holds now (None when absent)."""
    return _digest(read_entry(path)[0])


def record(
    source: Path | str,
    paths: Iterable[str],
    label: str,
    *,
    after: Mapping[str, str | bytes | None] | None = None,
    state_dir: Path | str | None = None,
    before: Mapping[str, str | bytes | None] | None = None,
) -> str:
    """Save the current bytes of `paths` (relative to `source`); return the checkpoint id.

    `before` (path -> text/bytes) overrides the disk for the paths it names: the content the
    delivery was computed against, e.g. an editor's unsaved buffer (None entries are ignored).
    """
    ws = Workspace(Path(source))
    given = {
        ws.resolve_entry(k).relative_to(ws.root).as_posix(): _as_bytes(v)
        for k, v in (before or {}).items()
    }
    cp_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    base = checkpoint_dir(ws.root, state_dir)
    tmp = base / (cp_id + ".tmp")
    (tmp / "blobs").mkdir(parents=True)
    try:
        files = [
            _save_entry(ws, tmp, n, rel_in, given) for n, rel_in in enumerate(dict.fromkeys(paths))
        ]
        manifest = {
            "version": 1,
            "id": cp_id,
            "label": label,
            "source": str(ws.root),
            "created": time.time(),
            "files": files,
            "after": None,
            "undone": None,
        }
        if after is not None:
            manifest["after"] = {
                ws.resolve_entry(k).relative_to(ws.root).as_posix(): _digest(_as_bytes(v))
                for k, v in after.items()
            }
        _write_json(tmp / "manifest.json", manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, base / cp_id)
    _prune(base)
    return cp_id


def _prune(base: Path) -> None:
    """Keep the newest KEEP_CHECKPOINTS checkpoints of a folder."""
    entries = sorted(p for p in base.iterdir() if (p / "manifest.json").is_file())
    for old in entries[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


def _save_entry(
    ws: Workspace, tmp: Path, n: int, rel_in: str, given: Mapping[str, bytes | None]
) -> dict[str, Any]:
    """Copy one file's bytes (or its `given` content) into the checkpoint folder; describe it."""
    abs_path = ws.resolve_entry(rel_in)
    rel = abs_path.relative_to(ws.root).as_posix()
    data, mode = read_entry(abs_path)
    override = given.get(rel)
    if override is not None:  # None ("absent") never hides a file that is on disk
        data = override
        if mode is None or stat.S_ISLNK(mode):
            mode = stat.S_IFREG | 0o644  # not on disk (or a link): restored as a plain file
    entry: dict[str, Any] = {
        "path": rel,
        "existed": data is not None,
        "mode": mode,
        "sha256": _digest(data),
        "blob": None,
        "missing_dirs": [],
    }
    if data is not None:
        entry["blob"] = f"blobs/{n}"
        (tmp / entry["blob"]).write_bytes(data)
    else:
        entry["missing_dirs"] = _missing_dirs(ws.root, abs_path)
    return entry


def _as_bytes(value: str | bytes | None) -> bytes | None:
    return value.encode("utf-8") if isinstance(value, str) else value


def _missing_dirs(root: Path, path: Path) -> list[str]:
    """Ancestors of `path` (inside root) that do not exist yet, deepest first."""
    out = []
    parent = path.parent
    while parent != root and not parent.exists():
        out.append(parent.relative_to(root).as_posix())
        parent = parent.parent
    return out


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _load(base: Path, cp_id: str) -> dict[str, Any]:
    path = base / cp_id / "manifest.json"
    if not path.is_file():
        raise UsageError(f"no checkpoint {cp_id!r}; list them with `k2lsp undo --list`")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def discard(source: Path | str, cp_id: str, *, state_dir: Path | str | None = None) -> None:
    """Forget a checkpoint whose delivery was abandoned before writing anything."""
    shutil.rmtree(checkpoint_dir(source, state_dir) / cp_id, ignore_errors=True)


def rollback(
    source: Path | str, cp_id: str, written: Iterable[str], *, state_dir: Path | str | None = None
) -> list[str]:
    """Put back the `written` paths of an unsealed checkpoint after its delivery failed
    part-way (and remove folders it created), then forget the checkpoint; returns the paths
    that could not be put back (the checkpoint is kept then)."""
    base = checkpoint_dir(source, state_dir)
    manifest = _load(base, cp_id)
    root, wanted = Path(manifest["source"]), set(written)
    stuck = []
    for entry in manifest["files"]:
        try:
            if entry["path"] in wanted:
                _restore(root, base / cp_id, entry, UndoResult(cp_id))
            else:  # not written (or the write that failed): only drop folders made for it
                _drop_missing_dirs(root, entry)
        except OSError:
            stuck.append(entry["path"])
    if not stuck:
        discard(source, cp_id, state_dir=state_dir)
    return stuck


def seal(source: Path | str, cp_id: str, *, state_dir: Path | str | None = None) -> None:
    """Record what the delivery wrote (the current bytes of every checkpointed file)."""
    base = checkpoint_dir(source, state_dir)
    manifest = _load(base, cp_id)
    root = Path(manifest["source"])
    manifest["after"] = {f["path"]: current_digest(root / f["path"]) for f in manifest["files"]}
    _write_json(base / cp_id / "manifest.json", manifest)


def list_checkpoints(
    source: Path | str,
    *,
    state_dir: Path | str | None = None,
) -> list[dict[str, Any]]:
    """Manifests of the checkpoints of `source` (deliveries to it or inside it, never to
    another worktree of the same repository), oldest first."""
    src = Path(source).expanduser().resolve()
    return [m for m in _all_manifests(checkpoint_dir(src, state_dir)) if _applies_to(m, src)]


def _all_manifests(base: Path) -> list[dict[str, Any]]:
    """Every checkpoint kept in `base` (all worktrees of a repository share it), oldest first."""
    if not base.is_dir():
        return []
    ids = [p.name for p in base.iterdir() if (p / "manifest.json").is_file()]
    return sorted((_load(base, cp_id) for cp_id in ids), key=lambda m: (m["created"], m["id"]))


def _applies_to(manifest: dict[str, Any], src: Path) -> bool:
    """Did the checkpoint's delivery write to `src` or a folder inside it, in the same work
    tree (a worktree nested inside `src` is another tree)?"""
    target = Path(manifest["source"])
    if target == src:
        return True
    if not target.is_relative_to(src) or not target.is_dir():
        return False
    return gitcmd.toplevel(target) == gitcmd.toplevel(src)


def undo(
    source: Path | str,
    checkpoint: str | None = None,
    *,
    force: bool = False,
    state_dir: Path | str | None = None,
) -> UndoResult:
    """Restore the bytes saved in `checkpoint` (default: the latest not yet undone)."""
    src = Path(source).expanduser().resolve()
    base = checkpoint_dir(src, state_dir)
    if checkpoint is None:
        pending = [m for m in list_checkpoints(src, state_dir=state_dir) if not m["undone"]]
        if not pending:
            others = sorted({m["source"] for m in _all_manifests(base) if not m["undone"]})
            hint = f" (k2lsp deliveries elsewhere in this repository: {', '.join(others)})"
            raise UsageError(
                f"nothing to undo: k2lsp has not written to {source}, or every "
                f"change was already undone{hint if others else ''}"
            )
        manifest = pending[-1]
    else:
        manifest = _load(base, checkpoint)
        if not _applies_to(manifest, src):
            raise UsageError(
                f"checkpoint {checkpoint} restores files in {manifest['source']}, not in "
                f"{source}; run `k2lsp undo --repo {manifest['source']}` to undo it"
            )
        if manifest["undone"]:
            raise UsageError(f"checkpoint {checkpoint} was already undone")
    root = Path(manifest["source"])
    if not force:
        _verify(manifest, root)
    result = UndoResult(checkpoint=manifest["id"])
    for entry in manifest["files"]:
        _restore(root, base / manifest["id"], entry, result)
    manifest["undone"] = time.time()
    _write_json(base / manifest["id"] / "manifest.json", manifest)
    result.message = (
        f"undid {manifest['label']!r}: restored {len(result.restored)} file(s), "
        f"removed {len(result.deleted)} created file(s)"
    )
    return result


def _verify(manifest: dict[str, Any], root: Path) -> None:
    """Refuse (EditConflict) unless every file still holds what the delivery wrote."""
    after = manifest["after"]
    if after is None:
        raise EditConflict(
            f"checkpoint {manifest['id']} was never completed (the delivery did not finish), so "
            "k2lsp cannot tell your edits from its own; check the files and run "
            f"`k2lsp undo --checkpoint {manifest['id']} --force` to restore them anyway"
        )
    changed = [rel for rel, digest in sorted(after.items()) if current_digest(root / rel) != digest]
    if changed:
        raise EditConflict(
            "refusing to undo: these files changed since k2lsp wrote them, and undo would lose "
            f"those edits: {', '.join(changed)}. Save or revert your edits first, or run "
            f"`k2lsp undo --checkpoint {manifest['id']} --force` to restore anyway"
        )


def _restore(root: Path, cp_dir: Path, entry: dict[str, Any], result: UndoResult) -> None:
    path = root / entry["path"]
    if not entry["existed"]:
        if path.is_symlink() or path.is_file():
            path.unlink()
            result.deleted.append(entry["path"])
        _drop_missing_dirs(root, entry)
        return
    data = (cp_dir / entry["blob"]).read_bytes()
    mode = int(entry["mode"])
    write_atomic(path, data, mode)
    result.restored.append(entry["path"])


def _drop_missing_dirs(root: Path, entry: dict[str, Any]) -> None:
    """Remove the folders that did not exist when `entry` was saved, if they are empty."""
    for rel_dir in entry["missing_dirs"]:
        try:
            (root / rel_dir).rmdir()
        except OSError:
            break  # not empty (or already gone): leave it


def write_atomic(path: Path, data: bytes, mode: int | None) -> None:
    """Replace `path` with `data` (or a symlink when `mode` says link) in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.k2lsp-{uuid.uuid4().hex[:8]}")
    try:
        if mode is not None and stat.S_ISLNK(mode):
            os.symlink(os.fsdecode(data), tmp)
        else:
            tmp.write_bytes(data)
            if mode is not None:
                os.chmod(tmp, stat.S_IMODE(mode))
        if path.is_dir() and not path.is_symlink():
            raise IsADirectoryError(f"{path} is a folder; k2lsp will not replace it with a file")
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        raise
