"""`k2lsp refactor "…"`: the repository-wide refactor job, headless.

    k2lsp refactor "rename tob to to_bytes and ..." [--repo DIR] [--json]
    k2lsp refactor "…" --plan-only plan.json     # K2 writes the plan; review / edit it
    k2lsp refactor --plan plan.json [--repo DIR] # run an (edited) plan
    k2lsp refactor --resume JOB_ID               # continue a killed or cancelled job

The result is a commit per batch on the branch `k2lsp/<job-id>` of the repository (a patch
when the folder is not a git repository); the user's files are not touched.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k2lsp.errors import UsageError
from k2lsp.redact.boundary import SafeStream, safe_text

if TYPE_CHECKING:
    from k2lsp.agent.events import EventSink
    from k2lsp.agent.refactor.job import JobOptions, JobResult


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `k2lsp refactor`."""
    ap = argparse.ArgumentParser(prog="k2lsp refactor", description=__doc__.split("\n\n")[0])
    ap.add_argument("task", nargs="?", default="", help="what to change, in words")
    ap.add_argument("--repo", default=".", help="the project folder (default: .)")
    ap.add_argument("--resume", metavar="JOB_ID", help="continue a stopped job")
    ap.add_argument("--plan", metavar="FILE", help="run this (reviewed, edited) plan file")
    ap.add_argument("--plan-only", metavar="FILE", help="write the plan to FILE and stop")
    ap.add_argument("--json", action="store_true", help="print events as JSON lines")
    ap.add_argument("--no-deliver", action="store_true", help="do not create the branch")
    ap.add_argument("--state-dir", help="k2lsp state folder (jobs live in <state>/jobs)")
    return ap


def cli(argv: list[str]) -> int:
    """Run (or resume) a refactor job; the exit code of its outcome."""
    from k2lsp.agent.refactor.job import JobOptions
    from k2lsp.cli.render import renderer
    from k2lsp.config.settings import load_settings

    args = build_parser().parse_args(argv)
    if not (args.task or args.resume or args.plan):
        raise UsageError('say what to refactor: k2lsp refactor "rename X to Y" (or --resume ID)')
    repo = Path(args.repo).expanduser()
    if not repo.is_dir():
        raise UsageError(f"folder {str(repo)!r} does not exist; pass --repo with your project")
    overrides = {"state_dir": args.state_dir} if args.state_dir else {}
    settings = load_settings(
        repo.resolve(), overrides, notify=lambda line: print(safe_text(line), file=sys.stderr)
    )
    out = SafeStream(sys.stdout)
    sink = renderer(args.json, out)  # type: ignore[arg-type]
    opts = JobOptions(
        task=args.task,
        repo=repo,
        resume=args.resume,
        plan_file=Path(args.plan) if args.plan else None,
        plan_only=Path(args.plan_only) if args.plan_only else None,
        deliver=not args.no_deliver,
    )
    result = asyncio.run(_cancellable(opts, settings, sink))
    print(safe_text(result.summary), file=sys.stderr)
    for site in result.left[:50]:
        print(f"site left: {site.path}:{site.line}:{site.column}", file=sys.stderr)
    return result.outcome.exit_code


async def _cancellable(opts: JobOptions, settings: Any, sink: EventSink) -> JobResult:
    from k2lsp.agent.refactor.runner import run_job

    loop = asyncio.get_running_loop()
    task = asyncio.create_task(run_job(opts, settings, [sink]))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
