"""The editor's running refactor jobs (`k2lsp.refactorRepository`), so that every way to stop
work reaches them: `k2lsp.cancel` (without a runId), `window/workDoneProgress/cancel` on the
job's progress bar, `{"cancel": true}` on the command itself and `shutdown`. Cancelling a job's
task stops it after its current tool call; the job file keeps it resumable."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

_JOBS: weakref.WeakKeyDictionary[Any, dict[asyncio.Task[None], str | None]] = (
    weakref.WeakKeyDictionary()
)


def register(ls: Any, task: asyncio.Task[None], token: str | None) -> None:
    """Track `task` (a job's driver) for `ls`; `token` is its progress token, if any."""
    jobs = _JOBS.setdefault(ls, {})
    jobs[task] = token
    task.add_done_callback(lambda t: jobs.pop(t, None))


def forget(ls: Any, task: asyncio.Task[None]) -> None:
    """`task` no longer runs a job (its review is a run of its own, cancelled as runs are)."""
    _JOBS.get(ls, {}).pop(task, None)


def running(ls: Any) -> list[asyncio.Task[None]]:
    return [t for t in _JOBS.get(ls, {}) if not t.done()]


def cancel_all(ls: Any) -> int:
    """Cancel every running job; answer how many were asked to stop."""
    tasks = running(ls)
    for task in tasks:
        task.cancel()
    return len(tasks)


def cancel_token(ls: Any, token: object) -> bool:
    """Cancel the job whose progress bar is `token` (False: no such running job)."""
    for task, tok in list(_JOBS.get(ls, {}).items()):
        if tok is not None and tok == token and not task.done():
            task.cancel()
            return True
    return False
