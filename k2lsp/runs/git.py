"""Delivery of a run's change set (apply / branch / patch), checkpoints, undo and merge3.

    delivery = deliver(run_copy, changes, "apply" | "branch" | "patch", task="...")
    cp = record_checkpoint(source, paths, label)   # before anything writes to the user's tree
    undo(source, checkpoint=None)                  # restore bytes; EditConflict if changed since
    merged, conflicted = merge3(base, ours, theirs)

`apply` plans every file first with the one delivery planner (`k2lsp.runs.plan`: base = the
run's starting snapshot, ours = the user's file now, theirs = the run copy; the same rules the
editor delivery uses); a single conflict means nothing is written, the patch is saved and the
outcome is `edit_conflict`. Otherwise a checkpoint is recorded, each file is replaced
atomically through `k2lsp.fs.safefs` (`k2lsp.runs.apply`), and the checkpoint is sealed with
what was written (for `k2lsp undo`). A saved patch follows `k2lsp.runs.patchfile`: the same
text, file, place and modes as the editor's delivery.

Before any mode delivers, the lines the run added are scanned for secrets (the API keys in
use and the redactor's credential patterns); a hit refuses the delivery naming file and line,
and the run copy is kept (nothing is altered or saved with the secret in it). Branch commit
messages carry the task text redacted and bounded, never verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from k2lsp.errors import Outcome, PathError, UsageError
from k2lsp.redact import redact
from k2lsp.runs import checkpoint as _cp
from k2lsp.runs import gitcmd
from k2lsp.runs.apply import current, disk_writes, plan_on_disk, write_entry
from k2lsp.runs.changes import ChangeSet
from k2lsp.runs.checkpoint import UndoResult
from k2lsp.runs.merge import merge3
from k2lsp.runs.patchfile import make_patch, save_patch
from k2lsp.runs.secrets import commit_message, find_secrets
from k2lsp.runs.workspace import Workspace

if TYPE_CHECKING:
    from k2lsp.runs.runcopy import RunCopy

__all__ = [
    "MODES",
    "Delivery",
    "UndoResult",
    "deliver",
    "merge3",
    "record_checkpoint",
    "seal_checkpoint",
    "undo",
]

MODES = ("apply", "branch", "patch")


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


# ---- checkpoints (implemented in k2lsp.runs.checkpoint; re-exported as this module's API) --------
record_checkpoint = _cp.record  # save the bytes of paths before a delivery writes them
seal_checkpoint = _cp.seal  # record what the delivery wrote (undo tells later edits apart)
undo = _cp.undo  # restore a checkpoint; EditConflict if the files changed since


# ---- delivery -------------------------------------------------------------------------------
def deliver(
    run_copy: RunCopy,
    changes: ChangeSet,
    mode: str,
    *,
    task: str,
    patch_file: Path | str | None = None,
    printed: bool = True,
) -> Delivery:
    """Deliver `changes` of `run_copy` to the user as `apply`, `branch` or `patch`.

    A patch goes to `patch_file` when given; else, in `patch` mode, the caller prints it
    (`printed`) or it is saved in the state dir (`k2lsp.runs.patchfile`)."""
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
        saved = None if printed and target is None else _keep(run_copy, patch, target)
        where = f"written to {saved}" if saved else "printed"
        return Delivery(
            mode,
            Outcome.SUCCESS,
            f"patch of {len(changes.files)} file(s) {where}",
            patch=patch,
            patch_file=saved,
            files=changes.paths(),
        )
    if mode == "branch":
        return _deliver_branch(run_copy, changes, task, patch, target)
    return _deliver_apply(run_copy, changes, task, patch, target)


def _keep(run_copy: RunCopy, patch: str, target: Path | None) -> Path:
    """Save the patch (to `target`, else the state dir's patches folder); its path."""
    return save_patch(patch, run_copy.state_dir, run_copy.run_id, target)


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


def _deliver_branch(
    run_copy: RunCopy, changes: ChangeSet, task: str, patch: str, target: Path | None
) -> Delivery:
    if not run_copy.is_git or not run_copy.branch:
        saved = _keep(run_copy, patch, target)
        return Delivery(
            "branch",
            Outcome.USAGE_ERROR,
            f"{run_copy.source} is not a git repository, so there is no branch to "
            f"commit to; the changes are saved in {saved}. Use --output apply or "
            "--output patch.",
            patch=patch,
            patch_file=saved,
        )
    from k2lsp.runs import branchbase

    ref = f"refs/heads/{run_copy.branch}"
    old = gitcmd.rev(run_copy.source, ref) or run_copy.base_commit
    head = branchbase.user_head(run_copy.source)
    ignored = [f.path for f in changes.files if f.untracked]  # git ignores them: no commit
    tracked = ChangeSet([f for f in changes.files if not f.untracked])
    committed = make_patch(run_copy, tracked) if ignored else patch
    on_head = (
        branchbase.tree_on_head(run_copy.source, head, committed, run_copy.prefix) if head else None
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
    note = ""
    kept: Path | None = None
    if ignored:
        kept = _keep(run_copy, patch, target)
        note = (
            f"; not committed because your .gitignore leaves them out: {', '.join(ignored)} "
            f"(the full patch, with them, is in {kept})"
        )
    return Delivery(
        "branch",
        Outcome.SUCCESS,
        f"committed {len(tracked.files)} file(s) as {commit[:12]} on branch "
        f"{run_copy.branch} ({basis}); your branch and files are untouched "
        f"(take it with `git merge {run_copy.branch}`){note}",
        branch=run_copy.branch,
        commit=commit,
        patch=patch,
        patch_file=kept,
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


def _deliver_apply(
    run_copy: RunCopy, changes: ChangeSet, task: str, patch: str, target: Path | None
) -> Delivery:
    ws = Workspace(run_copy.source)
    plan = plan_on_disk(run_copy, ws, changes)  # the one planner (k2lsp.runs.plan)
    if plan.conflicts:
        return _conflict(run_copy, plan.conflicts, patch, target)
    writes = disk_writes(plan)
    if not writes:
        return Delivery(
            "apply", Outcome.SUCCESS, "your tree already has every change of the run", patch=patch
        )
    state_dir = run_copy.state_dir
    label = f"run {run_copy.run_id}: {' '.join(redact(task).split())[:80]}"
    cp_id = record_checkpoint(ws.root, [w.rel for w in writes], label, state_dir=state_dir)
    moved = [w.rel for w in writes if current(ws.resolve_entry(w.rel)) != w.ours]
    if moved:  # the user saved a file between merging and writing: start over, lose nothing
        _cp.discard(ws.root, cp_id, state_dir=state_dir)
        return _conflict(
            run_copy, dict.fromkeys(moved, "it changed while delivering"), patch, target
        )
    done: list[str] = []
    for w in writes:
        try:
            write_entry(ws, w)
        except (OSError, PathError) as exc:  # e.g. a folder or file put in the way since planning
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


def _roll_back(
    run_copy: RunCopy,
    cp_id: str,
    done: list[str],
    failed: str,
    exc: OSError | PathError,
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


def _conflict(
    run_copy: RunCopy, conflicts: dict[str, str], patch: str, target: Path | None
) -> Delivery:
    saved = _keep(run_copy, patch, target)
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
