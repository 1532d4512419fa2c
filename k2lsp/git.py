"""Delivery of a run's change set (apply / branch / patch), checkpoints, undo and merge3.

    delivery = deliver(run_copy, changes, "apply" | "branch" | "patch", task="...")
    cp = record_checkpoint(source, paths, label)   # before anything writes to the user's tree
    undo(source, checkpoint=None)                  # restore bytes; EditConflict if changed since
    merged, conflicted = merge3(base, ours, theirs)

`apply` merges every file in memory first (base = the run's starting snapshot, ours = the
user's file now, theirs = the run copy); a single conflict means nothing is written, the patch
is saved and the outcome is `edit_conflict`. Otherwise a checkpoint is recorded, each file is
replaced atomically, and the checkpoint is sealed with what was written (for `k2lsp undo`).

Before any mode delivers, the lines the run added are scanned for secrets (the API keys in
use and the redactor's credential patterns); a hit refuses the delivery naming file and line,
and the run copy is kept (nothing is altered or saved with the secret in it). Branch commit
messages carry the task text redacted and bounded, never verbatim.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from k2lsp import checkpoint as _cp
from k2lsp import gitcmd
from k2lsp.agent.events import Outcome
from k2lsp.changes import ChangeSet, FileChange
from k2lsp.checkpoint import UndoResult, write_atomic
from k2lsp.errors import K2lspError, PathError, UsageError
from k2lsp.redact import PATTERNS, known_secrets, redact
from k2lsp.workspace import Workspace

if TYPE_CHECKING:
    from k2lsp.runcopy import RunCopy

__all__ = [
    "MODES",
    "Delivery",
    "UndoResult",
    "cli_undo",
    "deliver",
    "merge3",
    "record_checkpoint",
    "seal_checkpoint",
    "undo",
]

MODES = ("apply", "branch", "patch")
TRAILER = "Generated-by: k2lsp"
SUBJECT_MAX = 60  # characters of the task in a commit subject
BODY_MAX = 2_000  # characters of the task in a commit body


@dataclass
class Delivery:
    """How a change set was delivered."""

    mode: str
    outcome: Outcome
    message: str
    checkpoint: str | None = None
    branch: str | None = None
    commit: str | None = None
    patch: str = ""
    patch_file: Path | None = None
    conflicts: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # paths written or deleted
    keep_run_copy: bool = False  # refused for a reason the user fixes in the run copy


# ---- checkpoints (implemented in k2lsp.checkpoint; re-exported as this module's API) --------
record_checkpoint = _cp.record  # save the bytes of paths before a delivery writes them
seal_checkpoint = _cp.seal  # record what the delivery wrote (undo tells later edits apart)
undo = _cp.undo  # restore a checkpoint; EditConflict if the files changed since


# ---- three-way merge -----------------------------------------------------------------------
def merge3(base: str, ours: str, theirs: str) -> tuple[str, bool]:
    """Merge `theirs` into `ours` from common `base` (git merge-file); (text, conflicted)."""
    data, conflicted = merge3_bytes(base.encode(), ours.encode(), theirs.encode())
    return data.decode("utf-8", "surrogateescape"), conflicted


def merge3_bytes(base: bytes, ours: bytes, theirs: bytes) -> tuple[bytes, bool]:
    """Byte form of `merge3`; conflicts are marked with <<<<<<< ours / >>>>>>> k2lsp."""
    with tempfile.TemporaryDirectory(prefix="k2lsp-merge-") as tmp:
        names = []
        for label, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(tmp) / label
            path.write_bytes(data)
            names.append(str(path))
        proc = gitcmd.run(
            tmp,
            "merge-file",
            "-p",
            "-L",
            "yours",
            "-L",
            "start of run",
            "-L",
            "k2lsp",
            *names,
            check=False,
        )
    if proc.returncode < 0 or proc.returncode > 127:
        raise gitcmd.GitError("git merge-file failed: " + proc.stderr.decode("utf-8", "replace"))
    return proc.stdout, proc.returncode > 0


# ---- delivery -------------------------------------------------------------------------------
def deliver(
    run_copy: RunCopy,
    changes: ChangeSet,
    mode: str,
    *,
    task: str,
    patch_file: Path | str | None = None,
) -> Delivery:
    """Deliver `changes` of `run_copy` to the user as `apply`, `branch` or `patch`."""
    if mode not in MODES:
        raise UsageError(f"unknown output mode {mode!r}; use one of {', '.join(MODES)}")
    target = Path(patch_file) if patch_file else None
    if not changes:
        return Delivery(mode, Outcome.SUCCESS, "the run changed no files; nothing to deliver")
    found = find_secrets(changes, run_copy)
    if found:
        return _refuse_secrets(run_copy, mode, found)
    patch = make_patch(run_copy, changes)
    if mode == "patch":
        if target:
            _save(target, patch)
        where = f"written to {target}" if target else "printed"
        return Delivery(
            mode,
            Outcome.SUCCESS,
            f"patch of {len(changes.files)} file(s) {where}",
            patch=patch,
            patch_file=target,
            files=changes.paths(),
        )
    if mode == "branch":
        return _deliver_branch(run_copy, changes, task, patch, target)
    return _deliver_apply(run_copy, changes, task, patch, target)


def make_patch(run_copy: RunCopy, changes: ChangeSet) -> str:
    """A `git apply`-able diff (binary-safe, renames, modes) of `changes` vs. the start."""
    tree = run_copy.delivery_tree()
    args = [
        "diff",
        "--no-ext-diff",
        "--no-textconv",
        "--no-color",
        "--binary",
        "-M",
        "--src-prefix=a/",
        "--dst-prefix=b/",
    ]
    if run_copy.prefix:
        args.append(f"--relative={run_copy.prefix}/")
    specs = []
    for fc in changes.files:
        for rel in {fc.path, fc.old_path or fc.path}:
            specs.append(":(literal)" + (f"{run_copy.prefix}/{rel}" if run_copy.prefix else rel))
    proc = gitcmd.run(run_copy.git, *args, run_copy.base_commit, tree, "--", *specs)
    return proc.stdout.decode("utf-8", "surrogateescape")


# ---- secrets --------------------------------------------------------------------------------
def find_secrets(changes: ChangeSet, run_copy: RunCopy | None = None) -> list[str]:
    """`path:line` (or `path`) of every added line holding a known secret or credential pattern.

    Text files are scanned line by line (only lines the run added); binary files for the
    configured key values.
    """
    known = [k for k in known_secrets() if k]
    found: list[str] = []
    for fc in changes.files:
        if fc.new_text is not None:
            for number, line in _added_lines(fc.old_text or "", fc.new_text):
                if any(k in line for k in known) or any(p.search(line) for p in PATTERNS):
                    found.append(f"{fc.path}:{number}")
        elif fc.binary and run_copy is not None and known:
            data = run_copy.read_bytes(fc.path) or b""
            if any(k.encode("utf-8") in data for k in known):
                found.append(fc.path)
    return found


def _added_lines(old: str, new: str) -> list[tuple[int, str]]:
    a, b = old.splitlines(), new.splitlines()
    out: list[tuple[int, str]] = []
    for tag, _i1, _i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("replace", "insert"):
            out.extend((j + 1, b[j]) for j in range(j1, j2))
    return out


def _refuse_secrets(run_copy: RunCopy, mode: str, found: list[str]) -> Delivery:
    where = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
    return Delivery(
        mode,
        Outcome.USAGE_ERROR,
        f"nothing was delivered: the run's changes add what looks like a secret (an API key "
        f"in use or a credential) at {where}. Nothing was written, committed or saved with it. "
        f"The run copy is kept at {run_copy.root}: review those lines, remove the secret, and "
        "copy the changes you want by hand (then `k2lsp gc` removes the copy).",
        conflicts=sorted({f.split(":", 1)[0] for f in found}),
        keep_run_copy=True,
    )


def commit_message(task: str, run_id: str) -> str:
    """The message of a delivered commit: the task redacted, bounded and printable."""
    text = redact(task).replace("\r\n", "\n")
    text = "".join(c if c.isprintable() or c in "\n\t" else " " for c in text).strip()
    first = " ".join(text.split())
    subject = first[:SUBJECT_MAX].rstrip() + ("…" if len(first) > SUBJECT_MAX else "")
    body = text if len(text) <= BODY_MAX else text[:BODY_MAX].rstrip() + "\n[... task cut ...]"
    return f"k2lsp: {subject or 'changes'}\n\nTask: {body}\n\nK2lsp-Run: {run_id}\n{TRAILER}\n"


def _save(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", errors="surrogateescape")


def _default_patch_path(run_copy: RunCopy) -> Path:
    return run_copy.state_dir / "patches" / f"{run_copy.run_id}.patch"


def _deliver_branch(
    run_copy: RunCopy, changes: ChangeSet, task: str, patch: str, target: Path | None
) -> Delivery:
    if not run_copy.is_git or not run_copy.branch:
        saved = target or _default_patch_path(run_copy)
        _save(saved, patch)
        return Delivery(
            "branch",
            Outcome.USAGE_ERROR,
            f"{run_copy.source} is not a git repository, so there is no branch to "
            f"commit to; the changes are saved in {saved}. Use --output apply or "
            "--output patch.",
            patch=patch,
            patch_file=saved,
        )
    from k2lsp import branchbase

    ref = f"refs/heads/{run_copy.branch}"
    old = gitcmd.rev(run_copy.source, ref) or run_copy.base_commit
    head = branchbase.user_head(run_copy.source)
    on_head = (
        branchbase.tree_on_head(run_copy.source, head, patch, run_copy.prefix) if head else None
    )
    if on_head and head:
        tree, parent = on_head, head
        basis = "built on your HEAD without your uncommitted edits, so it merges on a dirty tree"
    else:
        tree, parent = run_copy.delivery_tree(), old
        basis = (
            "built on your starting state INCLUDING your uncommitted edits (the run's changes "
            "do not apply to HEAD alone); commit or stash your edits before merging"
        )
    message = commit_message(task, run_copy.run_id)
    ident = gitcmd.identity_of(run_copy.source)  # the user's identity, from their own config
    commit = gitcmd.commit_tree(run_copy.git, tree, [parent], message, identity=ident)
    _copy_objects(run_copy, commit, parent)
    gitcmd.run(run_copy.source, "update-ref", "-m", "k2lsp: deliver run", ref, commit, old)
    gitcmd.run(run_copy.git, "update-ref", ref, commit, check=False)
    gitcmd.run(run_copy.git, "reset", "-q", check=False)  # the copy's index follows
    return Delivery(
        "branch",
        Outcome.SUCCESS,
        f"committed {len(changes.files)} file(s) as {commit[:12]} on branch "
        f"{run_copy.branch} ({basis}); your branch and files are untouched "
        f"(take it with `git merge {run_copy.branch}`)",
        branch=run_copy.branch,
        commit=commit,
        patch=patch,
        files=changes.paths(),
    )


def _copy_objects(run_copy: RunCopy, commit: str, parent: str) -> None:
    """Copy the objects of `commit` the user's repository lacks from the run's own git dir
    (a pack over a pipe; the user's repository config is the only config involved there)."""
    if run_copy.layout < 2:
        return  # an older run copy was a worktree sharing the user's object store
    pack = gitcmd.run(
        run_copy.git,
        "pack-objects",
        "--revs",
        "--local",
        "--stdout",
        "-q",
        input=f"{commit}\n^{parent}\n".encode(),
    ).stdout
    gitcmd.run(run_copy.source, "unpack-objects", "-q", input=pack)


@dataclass
class _Write:
    rel: str
    data: bytes | None  # None = delete
    mode: int | None
    ours: bytes | None  # what the user's file held when merged (re-checked before writing)


def _git_mode(mode: str | None) -> int | None:
    return {"100755": 0o100755, "100644": 0o100644, "120000": 0o120777}.get(mode or "")


def _current(path: Path) -> bytes | None:
    return _cp.read_entry(path)[0]


def _plan_file(run_copy: RunCopy, ws: Workspace, fc: FileChange) -> list[_Write] | str:
    """The writes for one file, or a reason string when it conflicts."""
    kind = fc.kind
    old_rel = fc.old_path or fc.path
    base = None if kind == "created" else run_copy.base_bytes(old_rel)
    if kind == "deleted":
        theirs = None
    elif fc.binary or fc.new_text is None:
        theirs = run_copy.read_bytes(fc.path)
    else:
        theirs = fc.new_text.encode("utf-8")
    try:
        old_abs, new_abs = ws.resolve_entry(old_rel), ws.resolve_entry(fc.path)
    except PathError as exc:
        return str(exc)
    if fc.new_mode == "120000" and theirs is not None:
        target = (new_abs.parent / os.fsdecode(theirs)).resolve()
        if not target.is_relative_to(ws.root):
            return "the run made it a symlink pointing outside your folder"
    in_the_way = [p for p in (old_abs, new_abs) if p.is_dir() and not p.is_symlink()]
    if in_the_way:
        return f"your tree has a folder at {ws.rel(in_the_way[0])}"
    blocking = [d for d in new_abs.parents if d.is_relative_to(ws.root) and d != ws.root]
    blocking = [d for d in blocking if os.path.lexists(d) and not d.is_dir()]
    if blocking:
        return f"your tree has a file at {ws.rel(blocking[-1])} where the run needs a folder"
    ours = _current(old_abs)
    if ours == base or ours == theirs:
        result = theirs
    elif base is None or ours is None or theirs is None or fc.binary:
        return "you changed it too, and the two versions cannot be combined"
    else:
        merged, conflicted = merge3_bytes(base, ours, theirs)
        if conflicted:
            return "you edited the same lines"
        result = merged
    mode = _git_mode(fc.new_mode) if (fc.old_mode != fc.new_mode or ours is None) else None
    if old_abs == new_abs:
        return [_Write(fc.path, result, mode, ours)]
    ours_new = _current(new_abs)
    if ours_new is not None and ours_new != result:
        return f"the run renamed {old_rel} to it, but your tree already has a different {fc.path}"
    return [_Write(old_rel, None, None, ours), _Write(fc.path, result, mode, ours_new)]


def _deliver_apply(
    run_copy: RunCopy, changes: ChangeSet, task: str, patch: str, target: Path | None
) -> Delivery:
    ws = Workspace(run_copy.source)
    writes: list[_Write] = []
    conflicts: dict[str, str] = {}
    for fc in changes.files:
        plan = _plan_file(run_copy, ws, fc)
        if isinstance(plan, str):
            conflicts[fc.path] = plan
        else:
            writes.extend(w for w in plan if w.data != w.ours or w.mode is not None)
    if conflicts:
        return _conflict(run_copy, conflicts, patch, target)
    if not writes:
        return Delivery(
            "apply", Outcome.SUCCESS, "your tree already has every change of the run", patch=patch
        )
    state_dir = run_copy.state_dir
    label = f"run {run_copy.run_id}: {' '.join(redact(task).split())[:80]}"
    cp_id = record_checkpoint(ws.root, [w.rel for w in writes], label, state_dir=state_dir)
    moved = [w.rel for w in writes if _current(ws.resolve_entry(w.rel)) != w.ours]
    if moved:  # the user saved a file between merging and writing: start over, lose nothing
        _cp.discard(ws.root, cp_id, state_dir=state_dir)
        return _conflict(
            run_copy, dict.fromkeys(moved, "it changed while delivering"), patch, target
        )
    done: list[str] = []
    for w in writes:
        try:
            _write(ws, w)
        except OSError as exc:  # e.g. a folder or file put in the way since planning
            return _roll_back(run_copy, cp_id, done, w.rel, exc, patch, target)
        done.append(w.rel)
    seal_checkpoint(ws.root, cp_id, state_dir=state_dir)
    return Delivery(
        "apply",
        Outcome.SUCCESS,
        f"applied {len(writes)} file change(s) to {ws.root}; undo with `k2lsp undo`",
        checkpoint=cp_id,
        patch=patch,
        files=[w.rel for w in writes],
    )


def _write(ws: Workspace, w: _Write) -> None:
    path = ws.resolve_entry(w.rel)
    if w.data is None:
        if path.is_symlink() or path.exists():
            path.unlink()
        _prune_empty_dirs(path.parent, ws.root)
    else:
        mode = w.mode if w.mode is not None else _cp.read_entry(path)[1]
        write_atomic(path, w.data, mode)


def _roll_back(
    run_copy: RunCopy,
    cp_id: str,
    done: list[str],
    failed: str,
    exc: OSError,
    patch: str,
    target: Path | None,
) -> Delivery:
    """A write failed part-way: put back what was written, report a conflict."""
    stuck = _cp.rollback(run_copy.source, cp_id, done, state_dir=run_copy.state_dir)
    delivery = _conflict(run_copy, {failed: f"could not write it: {exc}"}, patch, target)
    if stuck:  # the checkpoint stays so `k2lsp undo --force` can finish the job
        delivery.checkpoint = cp_id
        delivery.message = (
            f"delivery stopped: could not write {failed} ({exc}), and these files could not be "
            f"put back: {', '.join(stuck)}; restore them with `k2lsp undo --checkpoint "
            f"{cp_id} --force`. The full change set is saved in {delivery.patch_file}."
        )
    return delivery


def _prune_empty_dirs(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _conflict(
    run_copy: RunCopy, conflicts: dict[str, str], patch: str, target: Path | None
) -> Delivery:
    saved = target or _default_patch_path(run_copy)
    _save(saved, patch)
    names = "; ".join(f"{path} ({why})" for path, why in sorted(conflicts.items()))
    return Delivery(
        "apply",
        Outcome.EDIT_CONFLICT,
        f"nothing was written: the run's changes conflict with your edits in {names}. "
        f"The full change set is saved in {saved}; apply it by hand with "
        f"`git apply --3way {saved}` (or `patch -p1 < {saved}`) and resolve the conflicts.",
        patch=patch,
        patch_file=saved,
        conflicts=sorted(conflicts),
    )


# ---- k2lsp undo -----------------------------------------------------------------------------
def cli_undo(argv: list[str]) -> int:
    """`k2lsp undo`: put back the files the last delivery (or a named checkpoint) wrote."""
    parser = argparse.ArgumentParser(prog="k2lsp undo", description=cli_undo.__doc__)
    parser.add_argument("--repo", default=".", help="the folder the delivery wrote to")
    parser.add_argument("--checkpoint", help="checkpoint id (default: the latest not undone)")
    parser.add_argument("--list", action="store_true", help="list checkpoints and exit")
    parser.add_argument(
        "--force", action="store_true", help="restore even files you changed after the delivery"
    )
    parser.add_argument("--state-dir", help="k2lsp state folder (non-git folders only)")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for m in _cp.list_checkpoints(args.repo, state_dir=args.state_dir):
                state = "undone" if m["undone"] else ("sealed" if m["after"] else "incomplete")
                print(f"{m['id']}  {state:10}  {len(m['files'])} file(s)  {m['label']}")
            return 0
        result = undo(args.repo, args.checkpoint, force=args.force, state_dir=args.state_dir)
    except K2lspError as exc:
        print(f"k2lsp undo: {exc}", file=sys.stderr)
        return exc.outcome.exit_code
    print(result.message)
    for rel in result.restored:
        print(f"  restored {rel}")
    for rel in result.deleted:
        print(f"  removed  {rel}")
    return 0
