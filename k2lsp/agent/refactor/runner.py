"""`run_job`: the refactor job from start (or resume) to delivery; see `job.py` for the parts.

Everything after `run_started` ends with one `run_finished`; a cancel (Ctrl-C, the editor's
cancel) stops after the current tool call, saves the job as `cancelled` and leaves it resumable;
a kill -9 leaves the job file of the last finished step, and `--resume` drops what the
interrupted batch had half done (the run copy is reset to the last batch commit).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from k2lsp.agent.events import Emitter, EventSink
from k2lsp.agent.refactor import gitwork
from k2lsp.agent.refactor.job import Job, JobOptions, JobResult
from k2lsp.agent.refactor.plan import Plan, write_plan
from k2lsp.agent.refactor.plan import sites_left as planned_left
from k2lsp.agent.refactor.prompts import batch_messages
from k2lsp.errors import K2lspError, Outcome
from k2lsp.lspc.text import Site


async def run_job(
    opts: JobOptions, settings: Any, sinks: list[EventSink] | None = None
) -> JobResult:
    """Plan, batches, check, delivery (or resume a job); returns how it ended."""
    from k2lsp.agent.session import redacting
    from k2lsp.model.client import K2Client
    from k2lsp.redact import register_secret

    register_secret(getattr(settings, "api_key", ""))
    job = Job(opts, settings, list(sinks or []))
    job.client = K2Client(settings)
    await asyncio.to_thread(job.open)
    job.emitter = Emitter(job.job.id, [redacting(job.sinks)])
    result = JobResult(job.job.id, Outcome.SUCCESS, "")
    job.emitter.emit(
        "run_started",
        task=job.job.task,
        model=settings.model,
        provider=settings.provider,
        repo=job.job.repo,
        mode="refactor",
    )
    try:
        await asyncio.to_thread(job.start_tools)
        await _drive(job, result)
    except (asyncio.CancelledError, K2lspError) as exc:
        cancelled = not isinstance(exc, K2lspError) or exc.outcome is Outcome.CANCELLED
        result.outcome = exc.outcome if isinstance(exc, K2lspError) else Outcome.CANCELLED
        result.summary = (
            f"job {job.job.id} stopped ({'cancelled' if cancelled else exc}); resume it with "
            f"`k2lsp refactor --resume {job.job.id}`"
        )
        job.job.status = "cancelled" if cancelled else "failed"
        job.job.summary = result.summary
        with contextlib.suppress(Exception):
            job.save()
    finally:
        await asyncio.shield(asyncio.to_thread(_close, job))
        with contextlib.suppress(Exception):
            await job.client.aclose()
    job.emitter.emit(
        "run_finished",
        outcome=result.outcome.value,
        exit_code=result.outcome.exit_code,
        summary=result.summary,
    )
    return result


def _close(job: Job) -> None:
    from k2lsp.tools.refs import close_servers

    with contextlib.suppress(Exception):
        close_servers(job.ctx.state)
    if job.sandbox is not None:
        with contextlib.suppress(Exception):
            job.sandbox.close()


async def _drive(job: Job, result: JobResult) -> None:
    if job.job.plan is None:
        plan = await job.make_plan()
    else:
        plan = Plan.from_json(job.job.plan)
    result.plan = plan
    job.progress("planned", plan, 0, "not run", "; ".join(plan.sources))
    if job.opts.plan_only is not None:
        await asyncio.to_thread(write_plan, plan, job.opts.plan_only)
        result.summary = (
            f"plan of job {job.job.id} written to {job.opts.plan_only}: {len(plan.sites)} sites "
            f"in {sum(len(b) for b in plan.batches)} files, {len(plan.batches)} batches; run it "
            f"with `k2lsp refactor --resume {job.job.id}` or edit it and use --plan FILE"
        )
        return
    job.job.status = "running"
    job.save()
    await asyncio.to_thread(gitwork.reset_to, job.run_copy, job.job.head)
    tests = "not run"
    for index in range(job.job.next_batch(), len(job.job.batches)):
        tests = await _batch(job, plan, index)
    left = await asyncio.to_thread(completeness, job, plan)
    result.left = left
    job.progress("check", plan, len(job.job.batches), tests, _left_text(left), len(left))
    changes = await asyncio.to_thread(job.run_copy.changes)
    if job.opts.deliver and changes and job.job.head != job.run_copy.base_commit:
        result.branch = await asyncio.to_thread(gitwork.deliver_branch, job.run_copy, job.job.head)
    result.patch = changes.diff() if changes else ""
    result.outcome = Outcome.TESTS_FAILED if tests in ("failed", "timed_out") else Outcome.SUCCESS
    where = f" on branch {result.branch}" if result.branch else ""
    if result.patch and not result.branch:  # not a git repository: the change set as a patch
        patch_file = job.job.folder / "changes.patch"
        await asyncio.to_thread(patch_file.write_text, result.patch, encoding="utf-8")
        where = f" in {patch_file} (apply it with `git apply` or `patch -p1`)"
    result.summary = (
        f"job {job.job.id}: {len(job.job.batches)} batches, {len(changes.files)} files changed"
        f"{where}; sites left: {len(left)}; tests: {tests}"
    )
    job.job.status = "done"
    job.job.summary = result.summary
    job.save()
    job.progress("done", plan, len(job.job.batches), tests, result.summary, len(left))


async def _batch(job: Job, plan: Plan, index: int) -> str:
    batch = job.job.batches[index]
    job.progress("batch", plan, index + 1, "not run", f"files: {', '.join(batch.files)}")
    history: list[Any] = []
    summary = await job.conversation(
        batch_messages(plan, job.job.ledger, index, batch.files), planning=False, history=history
    )
    problems = await _new_errors(job, batch.files)
    if problems:  # offered to the model once: the errors its edits introduced
        job.progress("batch", plan, index + 1, "not run", "diagnostics: new errors, fixing")
        ask = {"role": "user", "content": FIX_PROMPT.format(report=problems)}
        summary = await job.conversation([*history, ask], planning=False)
    head = f"k2lsp refactor {job.job.id}: batch {index + 1} of {len(job.job.batches)}"
    message = f"{head}\n\n{summary[:2000]}"
    commit = await asyncio.to_thread(gitwork.commit_batch, job.run_copy, job.job.head, message)
    job.progress("tests", plan, index + 1, "running")
    tests = await _tests(job, plan)
    batch.status, batch.commit, batch.tests, batch.note = "done", commit, tests, summary[:500]
    job.job.head = commit
    job.job.ledger.append(
        f"batch {index + 1}: {', '.join(batch.files)} -> {summary[:200]} (tests {tests})"
    )
    job.save()
    job.progress("batch", plan, index + 1, tests, f"batch {index + 1} committed as {commit[:12]}")
    return tests


FIX_PROMPT = (
    "The language server reports problems your edits introduced in this batch's files:\n"
    "{report}\nFix the NEW errors (only in these files), then reply with one line."
)


async def _new_errors(job: Job, files: list[str]) -> str:
    """The `diagnostics` report of a batch's files when it has NEW errors, else ""."""
    from k2lsp.agent.refactor.job import job_registry

    args = {"paths": files, "include_warnings": False}
    res = await job_registry(False).execute("diagnostics", args, job.ctx)
    return res.text if res.ok and "NEW error" in res.text else ""


async def _tests(job: Job, plan: Plan) -> str:
    """The plan's verify command (or the detected test command) in the sandbox."""
    from k2lsp.agent.refactor.job import job_registry

    if job.sandbox is None and not plan.args.verify:
        return "not run"
    args = {"command": plan.args.verify} if plan.args.verify else {}
    job.ctx.state.pop("last_test_result", None)
    res = await job_registry(False).execute("run_tests", args, job.ctx)
    data = job.ctx.state.get("last_test_result")
    if isinstance(data, dict) and data.get("status"):
        return "passed" if res.ok else str(data["status"])  # passed|failed|no_tests|error...
    return "passed" if res.ok else "error"


def completeness(job: Job, plan: Plan) -> list[Site]:
    """Re-run the plan's searches: planned sites still in the old form, and every match of the
    plan's `checks` patterns."""
    from k2lsp.tools import fileops
    from k2lsp.tools.rewrite import _lang_of, file_edits

    def read(rel: str) -> str:
        abs_path, rel = fileops.confined(job.ctx, rel)
        return fileops.load_text(job.ctx, abs_path, rel).raw

    left = planned_left(plan, read)
    if plan.args.checks:
        from k2lsp.code import filelist

        for rel in filelist.list_files(job.ctx.root):
            lang = _lang_of(rel)
            if lang is None or fileops.is_secret(job.ctx, rel):
                continue
            try:
                text = read(rel)
            except Exception:
                continue
            for pattern in plan.args.checks:
                for edit in file_edits(rel, text, lang, pattern, ""):
                    line = text.count("\n", 0, edit.start) + 1
                    col = edit.start - (text.rfind("\n", 0, edit.start) + 1) + 1
                    left.append(Site(rel, line, col, edit.end - edit.start))
    return sorted(set(left))


def _left_text(left: list[Site]) -> str:
    if not left:
        return "completeness check: no site left"
    shown = ", ".join(f"{s.path}:{s.line}:{s.column}" for s in left[:20])
    return f"completeness check: {len(left)} site(s) left: {shown}"
