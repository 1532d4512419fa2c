"""Drive a refactor job: plan (a bounded conversation ending in `record_plan`, or a plan file),
find the sites, then batch after batch — each its own conversation from the plan and the job
ledger — with a commit and the tests after each, the job file saved at every step so a killed
or cancelled job resumes (`--resume ID`), then the completeness check and one delivery.

Budgets (steps, tokens, cost, time) apply to the whole job: one `Budget` spans every
conversation and its usage is restored from the job file on resume.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k2lsp.agent.events import Emitter, EventSink
from k2lsp.agent.refactor import jobfile
from k2lsp.agent.refactor.plan import (
    Plan,
    PlanArgs,
    make_batches,
    read_plan,
)
from k2lsp.agent.refactor.prompts import planning_messages
from k2lsp.errors import Outcome, UsageError
from k2lsp.lspc.text import Site
from k2lsp.model.types import Usage
from k2lsp.tools.base import REGISTRY, Tool, ToolContext, ToolRegistry


@dataclass
class JobOptions:
    """What `k2lsp refactor` asks for."""

    task: str = ""
    repo: Path = Path(".")
    resume: str | None = None
    plan_file: Path | None = None  # run this (edited) plan instead of planning
    plan_only: Path | None = None  # write the plan here and stop
    deliver: bool = True


@dataclass
class JobResult:
    """How the job ended."""

    job_id: str
    outcome: Outcome
    summary: str
    left: list[Site] = field(default_factory=list)
    plan: Plan | None = None
    branch: str = ""
    patch: str = ""


def job_registry(with_plan: bool) -> ToolRegistry:
    """Every tool, plus `record_plan` while planning (editing tools hidden then)."""
    from k2lsp.tools import build_registry

    build_registry()
    reg = ToolRegistry()
    for tool_ in REGISTRY.tools(read_only=with_plan):
        reg.register(tool_)
    if with_plan:
        reg.register(
            Tool(
                "record_plan",
                "Record the refactor plan (once).",
                PlanArgs,
                _record_plan,
                writes="none",
            )
        )
    return reg


def _record_plan(ctx: ToolContext, args: PlanArgs) -> str:
    """Record the refactor plan: summary, searches, checks, verify command, files per batch."""
    ctx.state["plan_args"] = args
    return f"Plan recorded: {len(args.searches)} search(es), {len(args.checks)} check(s)."


class Job:
    """One job's moving parts (see `run_job`)."""

    def __init__(self, opts: JobOptions, settings: Any, sinks: list[EventSink]) -> None:
        self.opts, self.settings, self.sinks = opts, settings, sinks
        self.state_dir = Path(getattr(settings, "state_dir", None) or ".")
        self.job: jobfile.JobState
        self.run_copy: Any = None
        self.emitter: Emitter
        self.ctx: ToolContext
        self.budget: Any = None
        self.client: Any = None
        self.sandbox: Any = None

    # ---- set up ---------------------------------------------------------------------------
    def open(self) -> None:
        """Load or create the job and its run copy."""
        from k2lsp.agent.session import make_run_copy
        from k2lsp.runs.runcopy import RunCopy, new_run_id

        if self.opts.resume:
            self.job = jobfile.load(self.state_dir, self.opts.resume)
            if self.job.status == "done":
                raise UsageError(f"job {self.job.id} is already done ({self.job.summary})")
            self.run_copy = RunCopy.load(Path(self.job.run_dir))
        else:
            repo = Path(self.opts.repo).expanduser().resolve()
            if not self.opts.task.strip():
                raise UsageError("the refactor request is empty; say what to change")
            job_id = new_run_id()
            self.run_copy = make_run_copy(repo, job_id, {}, self.state_dir)
            self.job = jobfile.create(self.state_dir, job_id, self.opts.task, repo)
            self.job.run_dir = str(self.run_copy.run_dir)
            self.job.head = self.run_copy.base_commit
            self.job.save()

    def start_tools(self) -> None:
        """Sandbox, tool context and the job-wide budget."""
        from k2lsp.agent.budgets import Budget
        from k2lsp.agent.session import _open_sandbox
        from k2lsp.runs.workspace import Workspace

        root = Path(self.run_copy.root)
        self.sandbox, _ = _open_sandbox(self.settings, root, Path(self.run_copy.source))
        base = self.run_copy

        def base_text(rel: str) -> str | None:
            data = base.base_bytes(rel)
            return None if data is None else data.decode("utf-8", "surrogateescape")

        self.ctx = ToolContext(
            workspace=Workspace.from_settings(root, self.settings),
            sandbox=self.sandbox,
            emitter=self.emitter,
            settings=self.settings,
            state={"base_text": base_text, "task": self.job.task},
        )
        self.budget = Budget.from_settings(self.settings)
        u = self.job.usage
        self.budget.used = Usage(
            int(u.get("prompt_tokens", 0)),
            int(u.get("cached_tokens", 0)),
            int(u.get("completion_tokens", 0)),
            float(u.get("cost_usd", 0.0)),
        )
        self.budget.steps = self.job.steps

    def save(self) -> None:
        """Persist the job with the budget's totals."""
        if self.budget is not None:
            used = self.budget.used
            self.job.usage = {
                "prompt_tokens": used.prompt_tokens,
                "cached_tokens": used.cached_tokens,
                "completion_tokens": used.completion_tokens,
                "cost_usd": used.cost_usd,
            }
            self.job.steps = self.budget.steps
        self.job.save()

    def progress(
        self,
        phase: str,
        plan: Plan | None,
        batch: int,
        tests: str,
        message: str = "",
        left: int | None = None,
    ) -> None:
        """Emit a `job_progress` event."""
        sites = len(plan.sites) if plan else 0
        done_files = set(f for b in self.job.batches if b.status == "done" for f in b.files)
        if left is None:
            left = sum(1 for s in (plan.sites if plan else []) if s.path not in done_files)
        self.emitter.emit(
            "job_progress",
            job_id=self.job.id,
            phase=phase,
            batch=batch,
            batches=len(self.job.batches),
            files_done=len(done_files),
            files_total=sum(len(b.files) for b in self.job.batches),
            sites_total=sites,
            sites_left=left,
            tests=tests,
            cost_usd=round(self.budget.used.cost_usd if self.budget else 0.0, 6),
            message=message,
        )

    async def conversation(
        self, messages: list[dict[str, Any]], *, planning: bool, history: list[Any] | None = None
    ) -> str:
        """One bounded conversation (its own history) under the job's budget; `history`, when
        given, receives the conversation's messages (to continue it)."""
        from k2lsp.agent.compaction import Ledger
        from k2lsp.agent.loop import AgentLoop

        loop = AgentLoop(
            self.client,
            job_registry(planning),
            self.ctx,
            self.emitter,
            budget=self.budget,
            ledger=Ledger(goal=self.job.task),
            read_only=False,
        )
        try:
            result = await loop.run(messages)
        finally:
            self.save()
            if history is not None:
                history[:] = loop.messages
        return result.summary

    # ---- phases ---------------------------------------------------------------------------
    async def make_plan(self) -> Plan:
        """The plan: from the plan file, or from a planning conversation; sites and batches."""
        if self.opts.plan_file is not None:
            plan = read_plan(self.opts.plan_file)
            plan.task = plan.task or self.job.task
        else:
            self.progress("planning", None, 0, "not run", "K2 is writing the plan")
            await self.conversation(planning_messages(self.job.task), planning=True)
            args = self.ctx.state.get("plan_args")
            if not isinstance(args, PlanArgs):
                raise UsageError("K2 ended the planning step without calling record_plan; retry")
            plan = Plan(self.job.task, args)
        await asyncio.to_thread(self.find_sites, plan)
        self.job.plan = plan.to_json()
        self.job.batches = [jobfile.BatchState(files) for files in plan.batches]
        self.job.status = "planned"
        self.save()
        return plan

    def find_sites(self, plan: Plan) -> None:
        """Run the plan's searches on the run copy: its sites, their sources, the batches."""
        from k2lsp.tools.refs import find_sites

        found: set[Site] = set()
        plan.sources = []
        for search in plan.args.searches:
            sites, source = find_sites(self.ctx, search.path, search.symbol, search.line)
            found.update(sites)
            plan.sources.append(f"{search.symbol}: {len(sites)} sites by {source}")
        plan.sites = sorted(found)
        plan.batches = make_batches(plan.sites, plan.args.searches, plan.args.batch_files)
