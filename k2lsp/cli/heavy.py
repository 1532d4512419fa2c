"""`k2lsp --task … --heavy N`: N candidates, the winner delivered as `--output` says.

- `apply` / `patch`: the winner's change set, exactly as a single run's would be.
- `branch`: every candidate that changed something is committed on its own branch
  `k2lsp/<heavy-id>-c<i>`, and the winner's commit also gets `k2lsp/<heavy-id>`.
Every run copy is removed at the end (`--keep` keeps them); only delivered branches stay.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from k2lsp.agent.events import EventSink
from k2lsp.agent.session import RunRequest
from k2lsp.errors import Outcome
from k2lsp.redact.boundary import safe_text


def run_heavy_headless(args: argparse.Namespace) -> int:
    """Run the task of `args` as `args.heavy` candidates; deliver; the exit code."""
    from k2lsp.cli.heavy_render import HeavyTerminalRenderer
    from k2lsp.cli.render import JsonRenderer
    from k2lsp.cli.run import prepare_headless

    task, repo, output, settings, out = prepare_headless(args)
    sink: EventSink = JsonRenderer(out) if args.json else HeavyTerminalRenderer(out)  # type: ignore[arg-type]
    request = RunRequest(task=task, repo=repo, mode=args.mode)
    notes: list[str] = []

    async def finish(result: Any) -> Any:
        if result.winner is not None or output == "branch":
            notes.extend(await asyncio.to_thread(deliver_heavy, result, output, args, task))
        return result

    _collect_leftovers(settings)
    trajectory = Path(args.trajectory).expanduser() if args.trajectory else None
    result = asyncio.run(
        _cancellable(request, int(args.heavy), settings, [sink], finish, trajectory)
    )
    for line in notes if not args.json else []:
        print(safe_text(line), file=sys.stderr)
    if args.keep:
        for copy in result.run_copies():
            print(safe_text(f"run copy kept at {copy.root}"), file=sys.stderr)
    else:
        for problem in result.cleanup():
            print(safe_text(f"k2lsp: warning: {problem}"), file=sys.stderr)
    return int(result.outcome.exit_code)


def _collect_leftovers(settings: Any) -> None:
    """Run copies of crashed runs (their process is gone) go before N new ones are made."""
    from k2lsp.runs.gc import collect

    try:
        collect(getattr(settings, "state_dir", None))
    except OSError:
        pass  # an unreadable state folder: RunCopy.create reports it


async def _cancellable(
    request: RunRequest,
    n: int,
    settings: Any,
    sinks: list[EventSink],
    finish: Any,
    trajectory: Path | None,
) -> Any:
    from k2lsp.agent.heavy.scheduler import run_heavy
    from k2lsp.cli.run import cancellable

    return await cancellable(
        run_heavy(request, n, settings, sinks, finish=finish, trajectory_file=trajectory)
    )


def deliver_heavy(result: Any, output: str, args: argparse.Namespace, task: str) -> list[str]:
    """Deliver the heavy run's winner (and with `branch` every candidate); notes for the user."""
    from k2lsp.runs import git, gitcmd, patchfile

    notes: list[str] = []
    winner = result.winner
    if output != "branch":
        patch_file = Path(args.patch_file) if args.patch_file else None
        copy = winner.result.run_copy
        d = git.deliver(copy, winner.result.changes, output, task=task, patch_file=patch_file)
        if output == "patch" and patch_file is None and d.patch and args.json:
            # stdout carries the events: saved the one way (`k2lsp.runs.patchfile`, private)
            saved = patchfile.save_patch(d.patch, copy.state_dir, result.run_id)
            d.message = d.message.replace("printed", f"written to {saved}")
        elif output == "patch" and patch_file is None:
            sys.stdout.write(d.patch)
            sys.stdout.flush()
        if d.outcome is not Outcome.SUCCESS:
            result.outcome = d.outcome
        return [f"{winner.label}: {d.message}"]
    for c in result.candidates:
        if not c.changed:
            continue
        d = git.deliver(c.result.run_copy, c.result.changes, "branch", task=task)
        notes.append(f"{c.label}: {d.message}")
        if c is winner and d.commit:
            ref = f"refs/heads/k2lsp/{result.run_id}"
            gitcmd.run(
                c.result.run_copy.source,
                "update-ref",
                "-m",
                "k2lsp: heavy winner",
                ref,
                d.commit,
                "",
            )
            notes.append(f"winner {c.label} also on branch k2lsp/{result.run_id}")
        if c is winner and d.outcome is not Outcome.SUCCESS:
            result.outcome = d.outcome
    return notes
