"""`k2lsp.refactorRepository` — "K2: Refactor across the repository…": start a refactor job
(`k2lsp.agent.refactor`) on the workspace folder, as `k2lsp refactor` does headless.

Arguments: `{"instruction": "rename X to Y …"}` or `{"resume": "<job id>"}`. Answers at once
with `{"started": true}`; `{"cancel": true}` stops the running jobs after their current tool
call (`{"cancelled": n}`; each is saved as cancelled and resumable); so do `k2lsp.cancel`
without a runId and `window/workDoneProgress/cancel` on the job's progress bar
(server/jobs.py). The job's events (including `job_progress`: batch k of n, files, sites
left, tests, cost) go to the editor like a run's (`$/progress`, `window/logMessage`, opt-in
`k2lsp/stream`), and its end is shown with `window/showMessage`: the branch `k2lsp/<job-id>`
with a commit per batch (the user's files are not touched), the sites left, or how to resume.
A stopped editor leaves a job resumable.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lsprotocol import types

from k2lsp.errors import UsageError
from k2lsp.server.app import K2LanguageServer  # pygls reads the handler's annotations

CMD_REFACTOR_REPOSITORY = "k2lsp.refactorRepository"
TITLE = "K2: Refactor across the repository"


async def refactor_repository(ls: K2LanguageServer, *raw: Any) -> dict[str, Any]:
    """Start (or resume) a refactor job on the workspace folder."""
    from k2lsp.agent.refactor.job import JobOptions
    from k2lsp.agent.refactor.runner import run_job
    from k2lsp.server import jobs
    from k2lsp.server.commands import first_arg
    from k2lsp.server.job_review import offer
    from k2lsp.server.stream import RunStream

    arg = first_arg(raw)
    if arg.get("cancel"):
        return {"cancelled": jobs.cancel_all(ls)}
    instruction = str(arg.get("instruction") or "").strip()
    resume = str(arg.get("resume") or "").strip() or None
    if not instruction and not resume:
        ls.show(f"{TITLE}: say what to change", types.MessageType.Warning)
        raise UsageError('pass {"instruction": "rename X to Y ..."} or {"resume": "<job id>"}')
    opts = JobOptions(task=instruction, repo=ls.root(), resume=resume)
    settings = ls.run_settings()
    stream = RunStream(ls, resume or "refactor", title=TITLE, notify=ls.wants_stream())
    await stream.open(instruction or f"resume {resume}")

    async def go() -> None:
        summary = "the refactor job failed"
        result = None
        kind = types.MessageType.Error
        try:
            result = await run_job(opts, settings, [stream.sink])  # a cancel ends it normally
            summary = result.summary
            kind = types.MessageType.Info if not result.left else types.MessageType.Warning
        except Exception as exc:  # shown to the user; the job file keeps what was done
            summary = f"the refactor job stopped: {exc}"
        finally:
            stream.close(summary)
        ls.show(f"{TITLE}: {summary}", kind)
        if result is not None:  # clients reviewing per hunk get the branch as one review
            me = asyncio.current_task()
            if me is not None:
                jobs.forget(ls, me)  # the job is over; its review is cancelled like a run's
            await offer(ls, result, TITLE)

    task = asyncio.get_running_loop().create_task(go())
    jobs.register(ls, task, stream.progress_token)
    return {"started": True}
