"""The job's git work on its run copy: a commit per batch, a reset to the last commit when a
killed job resumes, and delivery of the commit chain as the branch `k2lsp/<job-id>`."""

from __future__ import annotations

from typing import Any

from k2lsp.runs import gitcmd

IDENTITY = {
    "GIT_AUTHOR_NAME": gitcmd.FALLBACK_NAME,
    "GIT_AUTHOR_EMAIL": gitcmd.FALLBACK_EMAIL,
    "GIT_COMMITTER_NAME": gitcmd.FALLBACK_NAME,
    "GIT_COMMITTER_EMAIL": gitcmd.FALLBACK_EMAIL,
}


def commit_batch(run_copy: Any, parent: str, message: str) -> str:
    """Commit the run copy's current state on top of `parent`; the commit id."""
    tree = run_copy.snapshot_now()
    commit = gitcmd.commit_tree(run_copy.git, tree, [parent], message, identity=IDENTITY)
    if run_copy.branch:
        gitcmd.run(run_copy.git, "update-ref", f"refs/heads/{run_copy.branch}", commit, check=False)
    return commit


def reset_to(run_copy: Any, commit: str) -> None:
    """Put the run copy's files back to `commit` (what a killed batch left is dropped)."""
    gitcmd.run(run_copy.git, "reset", "-q", "--hard", commit)
    gitcmd.run(run_copy.git, "clean", "-q", "-f", "-d", check=False)


def deliver_branch(run_copy: Any, head: str) -> str:
    """Make the batch commits the branch `k2lsp/<job-id>` of the user's repository."""
    from k2lsp.runs.git import _copy_objects

    if not run_copy.is_git or not run_copy.branch:
        return ""
    _copy_objects(run_copy, head, run_copy.base_commit)
    ref = f"refs/heads/{run_copy.branch}"
    gitcmd.run(run_copy.source, "update-ref", "-m", "k2lsp: refactor job", ref, head)
    return str(run_copy.branch)
