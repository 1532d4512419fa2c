"""Finding and removing the run copies of runs whose process is gone (`k2lsp gc`, server start),
and of conversations past their keep limit (`k2lsp.runs.conversations`)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from k2lsp.config.settings import default_state_dir
from k2lsp.runs import conversations, gitcmd
from k2lsp.runs.runcopy import RunCopy, _lock


# ---- stale runs ---------------------------------------------------------------------------
def stale_runs(state_dir: Path | str | None = None) -> list[Path]:
    """Run folders whose owning process is gone (their lock can be taken)."""
    runs = default_state_dir(state_dir) / "runs"
    found = []
    for run_dir in sorted(runs.iterdir() if runs.is_dir() else []):
        if not run_dir.is_dir():
            continue
        if _unfinished_job(run_dir):
            continue  # a stopped refactor job resumes from it (k2lsp refactor --resume)
        lock = _lock(run_dir / "run.lock")
        if lock is None:
            continue  # a live run holds it
        lock.close()
        found.append(run_dir)
    return found


def _unfinished_job(run_dir: Path) -> bool:
    """Is `run_dir` the run copy of a refactor job that is not done (`<state>/jobs/<id>`)?"""
    job = run_dir.parent.parent / "jobs" / run_dir.name / "job.json"
    try:
        return json.loads(job.read_text(encoding="utf-8")).get("status") != "done"
    except (OSError, ValueError, AttributeError):
        return False


def remove_run(run_dir: Path) -> str:
    """Remove one stale run: its worktree, its undelivered branch, its folder."""
    try:
        copy = RunCopy.load(run_dir)
    except (OSError, ValueError, KeyError):
        shutil.rmtree(run_dir, ignore_errors=True)
        return f"removed {run_dir} (incomplete run folder)"
    if copy.is_git and not copy.source.is_dir():
        copy.is_git = False  # the repository itself is gone: only our files remain
    copy.cleanup(keep_branch=False)
    kept = ""
    if copy.is_git and copy.branch and gitcmd.rev(copy.source, f"refs/heads/{copy.branch}"):
        kept = f"; kept branch {copy.branch} (it carries a delivered commit)"
    return f"removed run {copy.run_id} ({copy.source}){kept}"


def collect(
    state_dir: Path | str | None = None,
    *,
    setup_grace_s: float = 600.0,
    keep_conversations: int = conversations.DEFAULT_KEEP,
    conversation_days: float = conversations.DEFAULT_DAYS,
) -> list[str]:
    """Remove every run whose owning process is gone: its folder, its worktree and its
    undelivered `k2lsp/<id>` branch (used by `k2lsp gc` and at every server start).

    A run a live process holds (its `run.lock` is locked) is never touched. A folder without
    `run.json` younger than `setup_grace_s` is a run being created right now (its lock may not
    be taken yet) and is left alone too. A conversation's parked run copy is kept while it is
    among the `keep_conversations` most recent of its workspace and younger than
    `conversation_days` (0 keeps none); a collected one leaves a tombstone record so continuing
    it says why it cannot. Returns one line per run handled.
    """
    keep = conversations.keepers(state_dir, keep_conversations, conversation_days)
    runs = default_state_dir(state_dir) / "runs"
    changed = {}  # taken before stale_runs, whose lock attempt touches the folders
    for run_dir in runs.iterdir() if runs.is_dir() else []:
        try:
            changed[run_dir] = run_dir.stat().st_mtime
        except OSError:
            continue
    done = []
    for run_dir in stale_runs(state_dir):
        young = time.time() - changed.get(run_dir, time.time()) < setup_grace_s
        if young and not (run_dir / "run.json").exists():
            continue
        parked = conversations.is_parked(run_dir)
        if parked and run_dir.name in keep:
            continue
        try:
            done.append(remove_run(run_dir))
        except (gitcmd.GitError, OSError) as exc:
            done.append(f"could not remove {run_dir}: {exc}")
            continue
        if parked:
            conversations.tombstone(
                state_dir,
                run_dir.name,
                "its run copy was collected (k2lsp gc: too old or over "
                "the number of conversations kept per workspace)",
            )
    try:
        done += conversations.prune_records(state_dir)
    except OSError as exc:
        done.append(f"could not tidy the conversation records: {exc}")
    return done
