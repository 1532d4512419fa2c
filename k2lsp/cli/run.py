"""The headless run of `k2lsp --task`: settings from flags, the run with a renderer, delivery
(apply / branch / patch) through `k2lsp.runs.git.deliver`, and the exit code of the outcome.

Ctrl-C (SIGINT) or SIGTERM cancels the run task: the run ends with outcome `cancelled` (exit
130) and nothing is delivered. A second Ctrl-C exits at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from k2lsp.agent.events import EventSink
from k2lsp.agent.session import RunRequest, RunResult
from k2lsp.errors import Outcome, UsageError
from k2lsp.redact.boundary import SafeStream, safe_text

T = TypeVar("T")
DELIVER_ON = (Outcome.SUCCESS, Outcome.TESTS_FAILED)


def settings_overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """Settings fields given on the command line (None = not given) and the flag of each.

    Flags arrive as text and are read like env vars (`parse_text`), so `--max-steps -5` fails
    with the same words as `max_steps = -5` in k2lsp.toml."""
    from k2lsp.config.model import FLAGS, parse_text

    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for flag, key in FLAGS.items():
        text = getattr(args, flag.removeprefix("--").replace("-", "_"), None)
        if text is not None:
            values[key] = parse_text(key, text) if isinstance(text, str) else text
            labels[key] = flag
    return values, labels


def default_output() -> str:
    """`branch` in CI (env CI set and not false), else `apply`."""
    ci = os.environ.get("CI", "").strip().lower()
    return "branch" if ci not in ("", "0", "false", "no") else "apply"


def read_task(args: argparse.Namespace) -> str:
    """The task text (`-` reads stdin); UsageError when there is none."""
    task = args.task
    if task == "-":
        task = sys.stdin.read()
    if not task or not task.strip():
        raise UsageError('nothing to do: pass --task "what to do" (or run `k2lsp --help`)')
    return task.strip()


class Headless(NamedTuple):
    """What a headless run (single or heavy) starts from, checked and loaded from `args`."""

    task: str
    repo: Path
    output: str
    settings: Any
    out: SafeStream  # the redaction boundary: stdout, or stderr when stdout carries the patch


def prepare_headless(args: argparse.Namespace) -> Headless:
    """The task, repo folder, delivery, settings and event stream of `args`; UsageError on bad
    input (no task, no such folder, --patch-file without --output patch, a bad setting)."""
    from k2lsp.config.settings import load_settings

    task = read_task(args)
    repo = Path(args.repo).expanduser()
    if not repo.is_dir():
        what = "is a file, not a folder" if repo.exists() else "does not exist"
        raise UsageError(f"folder {str(repo)!r} {what}; pass --repo with your project folder")
    output = args.output or default_output()
    if args.patch_file and output != "patch":
        raise UsageError("--patch-file only works with --output patch")
    overrides, labels = settings_overrides(args)
    settings = load_settings(
        repo.resolve(),
        overrides,
        labels=labels,
        trusted=True if getattr(args, "trust_repo", False) else None,
        notify=lambda line: print(safe_text(line), file=sys.stderr),
    )
    to_stdout_patch = output == "patch" and not args.patch_file and not args.json
    out = SafeStream(sys.stderr if to_stdout_patch else sys.stdout)
    return Headless(task, repo, output, settings, out)


def run_headless(args: argparse.Namespace) -> int:
    """Run the task of `args`, render it, deliver, and return the exit code."""
    from k2lsp.cli.render import renderer

    task, repo, output, settings, out = prepare_headless(args)
    sink = renderer(args.json, out)  # type: ignore[arg-type]
    request = RunRequest(
        task=task,
        repo=repo,
        mode=args.mode,
        context=_context(args, settings, repo),
        conversation=_conversation(args, settings, repo),
    )
    delivered: list[str] = []

    async def finish(result: RunResult) -> RunResult:
        if result.outcome in DELIVER_ON and result.changes:
            delivered.append(await asyncio.to_thread(deliver, result, output, args, task))
        return result

    trajectory = Path(args.trajectory).expanduser() if args.trajectory else None
    result = asyncio.run(_run_cancellable(request, settings, [sink], finish, trajectory))
    into_tree = bool(delivered) and output == "apply" and result.outcome in DELIVER_ON
    _after(
        result, args, delivered, lambda keep: _settle(result, request, settings, into_tree, keep)
    )
    return result.outcome.exit_code


def _context(args: argparse.Namespace, settings: Any, repo: Path) -> str:
    """The context block of `--context-file` (paths confined to --repo; UsageError if not)."""
    from k2lsp.agent.context_items import render_context

    files = getattr(args, "context_file", None) or []
    return render_context(repo.resolve(), [{"kind": "file", "path": f} for f in files], settings)


def _conversation(args: argparse.Namespace, settings: Any, repo: Path) -> str | None:
    """The conversation `--continue [ID]` names (the last one of `repo` without an ID)."""
    wanted = getattr(args, "continue_", None)
    if wanted is None:
        return None
    if wanted:
        return str(wanted)
    from k2lsp.runs.conversations import latest

    last = latest(getattr(settings, "state_dir", None), repo)
    if last is None:
        raise UsageError(
            f"no conversation to continue in {repo.resolve()}; run `k2lsp --task ...` first "
            "(or pass the conversation id: --continue ID)"
        )
    return last


def _settle(
    result: RunResult, request: RunRequest, settings: Any, into_tree: bool, keep: bool
) -> str | None:
    from k2lsp.agent.followup import settle

    return settle(
        result,
        request,
        settings,
        result.conversation,
        delivered=into_tree,
        delivery="applied" if into_tree else "",
        cleanup=not keep,
    )


async def _run_cancellable(
    request: RunRequest, settings: Any, sinks: list[EventSink], finish: Any, trajectory: Path | None
) -> RunResult:
    from k2lsp.agent.session import execute_run

    return await cancellable(
        execute_run(request, settings, sinks, finish=finish, trajectory_file=trajectory)
    )


async def cancellable(run: Coroutine[Any, Any, T]) -> T:
    """Await `run` as a task that Ctrl-C (SIGINT) or SIGTERM cancels; a second one exits."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(run)

    def on_signal() -> None:
        if task.cancelling():
            os._exit(130)  # second Ctrl-C: stop now (k2lsp gc removes what is left)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        return await task
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def deliver(result: RunResult, output: str, args: argparse.Namespace, task: str) -> str:
    """Deliver the changes of `result`, note where they went in its summary (and a failed
    delivery in its outcome); returns that note."""
    from k2lsp.runs.git import deliver as git_deliver

    patch_file = Path(args.patch_file) if args.patch_file else None
    printed = not args.json  # under --json stdout carries the events: the patch is saved
    delivery = git_deliver(
        result.run_copy, result.changes, output, task=task, patch_file=patch_file, printed=printed
    )
    if output == "patch" and delivery.patch_file is None and delivery.patch:
        _print_patch(delivery.patch)
    note = delivery.message
    if delivery.keep_run_copy:
        args.keep = True
    if delivery.outcome is not Outcome.SUCCESS:
        result.outcome = delivery.outcome
    result.summary = f"{result.summary}\n\n{note}".strip()
    return note


def _print_patch(patch: str) -> None:
    try:
        sys.stdout.write(patch)
        sys.stdout.flush()
    except BrokenPipeError:
        pass


def _after(
    result: RunResult,
    args: argparse.Namespace,
    delivered: list[str],
    settle: Callable[[bool], str | None],
) -> None:
    """Tell the user where things are, then keep the conversation (its run copy parked for
    `--continue`) or remove the run copy unless it must stay."""
    rc = result.run_copy
    undelivered = bool(result.changes) and not delivered and result.outcome is not Outcome.CANCELLED
    keep = args.keep or undelivered
    kept: str | None = None
    if rc is not None:
        try:
            kept = settle(keep)
        except Exception as exc:  # cleanup problems must not change the exit code
            print(f"k2lsp: warning: could not keep or remove the run copy: {exc}", file=sys.stderr)
    lines = []
    if delivered and not args.json:
        lines.append(delivered[-1])
    if keep and rc is not None and kept is None:
        why = "kept" if args.keep else "not delivered (the run did not finish); kept"
        lines.append(f"run copy {why} at {rc.root}")
    if kept and not args.json:
        lines.append(f'conversation {kept}: follow up with `k2lsp --continue --task "..."`')
    if result.trajectory and not args.json:
        lines.append(f"trajectory: {result.trajectory}")
    for line in lines:
        print(safe_text(line), file=sys.stderr)
