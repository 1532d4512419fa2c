"""One review of a finished refactor job: when the editor reviews per hunk (`reviewHunks`),
the job branch's cumulative change (its tip against the commit it started from) is offered as
one multi-file `k2lsp/review`, each file labelled with the batch that first changed it
(`group`, e.g. "batch 2: …"). The user accepts or rejects hunks or whole files
(`k2lsp.accept` / `k2lsp.reject` with `{runId, files: [path]}`); accepted hunks land through
the one delivery loop (`k2lsp.server.send`) onto the user's current buffers, the rest is
saved as a patch. The branch itself stays as it was."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from k2lsp.errors import Outcome
from k2lsp.runs import gitcmd
from k2lsp.runs.changes import ChangeSet, FileChange

if TYPE_CHECKING:
    from k2lsp.agent.refactor.job import JobResult
    from k2lsp.server.app import K2LanguageServer


def _git(root: Path, *args: str) -> str:
    return gitcmd.out(root, *args)  # the one hardened runner (no repo config, no hooks)


def _blob(root: Path, rev: str, path: str) -> str | None:
    data = gitcmd.cat_file(root, f"{rev}:{path}")
    return data.decode("utf-8", "surrogateescape") if data is not None else None


def branch_changes(root: Path, branch: str) -> tuple[ChangeSet, dict[str, str]]:
    """The branch's cumulative change against where it started, and each path's batch."""
    base = _git(root, "merge-base", "HEAD", branch).strip()
    groups: dict[str, str] = {}
    log = _git(root, "log", "--reverse", "--no-renames", "--format=%x01%s", "--name-only",
               f"{base}..{branch}")  # fmt: skip
    subject = ""
    for line in log.splitlines():
        if line.startswith("\x01"):
            subject = line[1:]
            label = subject.split(": ", 1)[1] if ": batch " in subject else subject
            subject = label[:120]
        elif line.strip():
            groups.setdefault(line.strip(), subject)
    paths = _git(root, "diff", "--no-renames", "--name-only", base, branch).splitlines()
    files = [FileChange(p, _blob(root, base, p), _blob(root, branch, p)) for p in paths if p]
    return ChangeSet(files), groups


async def offer(ls: K2LanguageServer, result: JobResult, title: str) -> None:
    """Offer the finished job's branch as one review (clients that review per hunk)."""
    from k2lsp.agent.session import RunRequest, RunResult
    from k2lsp.server import review
    from k2lsp.server.runs import Run

    if not result.branch or not review.wanted(ls):
        return
    root = ls.root()
    changes, groups = await asyncio.to_thread(branch_changes, root, result.branch)
    if not changes:
        return
    run = Run(f"job-{result.job_id}", RunRequest(result.summary, root, "refactor"), title)
    run.task = asyncio.current_task()  # k2lsp.cancel ends the review like a run's
    ls.runs.add(run)
    outcome = RunResult(run.id, Outcome.SUCCESS, result.summary, changes)
    try:
        await review.review(ls, run, outcome, groups)
    except asyncio.CancelledError:  # hunks already accepted stay; the branch keeps it all
        run.state, run.outcome, run.delivery = "cancelled", Outcome.CANCELLED.value, "nothing"
        ls.show(f"{title}: review cancelled; the branch {result.branch} keeps the whole change")
        raise
    run.state, run.outcome = "finished", Outcome.SUCCESS.value
