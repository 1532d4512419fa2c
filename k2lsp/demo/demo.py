"""`k2lsp demo`: a REPLAY of a recorded K2 session, end to end with real parts.

It copies the bundled example repository (`example/`, one failing pytest test) into a temporary
folder (git init + commit), serves the recorded K2-format replies (`session.json`) from the fake
K2 server in this process, and runs the real agent, tools, sandbox and git delivery through the
real `openai` SDK against it. No API key is needed and no model is called: the model's moves are
recorded, everything they act on is live. The demo is the only place where `--sandbox auto`
falls back to `none`, with a visible warning.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import typing
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / "example"
SESSION = HERE / "session.json"
TASK = "Fix the failing test."
DEMO_KEY = "sk-demo-replay-not-a-real-key-000000"
MODEL = "kimi-k2-thinking"


def make_repo(parent: Path) -> Path:
    """Copy the example into `parent/textstats` and commit it; returns the repo path."""
    repo = parent / "textstats"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    from k2lsp.runs import gitcmd  # the one git runner: no inherited GIT_DIR, no hooks

    config = [
        "-c",
        "user.name=k2lsp demo",
        "-c",
        "user.email=demo@k2lsp.invalid",
        "-c",
        "init.defaultBranch=main",
        "-c",
        "commit.gpgsign=false",
    ]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "textstats example"]):
        gitcmd.run(repo, *config, *args)
    return repo


def pick_sandbox(kind: str, root: Path, err: Any) -> str:
    """`kind`, or `none` with a visible warning when `auto` finds no sandbox (demo only)."""
    from k2lsp.errors import SandboxUnavailable
    from k2lsp.sandbox.base import SandboxSettings, get_sandbox

    if kind != "auto":
        return kind
    try:
        sandbox = get_sandbox("auto", root, SandboxSettings(kind="auto"))
        sandbox.close()
        print(f"Tests run in the {sandbox.name} sandbox.", file=err)
        return str(sandbox.name)
    except SandboxUnavailable as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no sandbox"
        print(
            f"WARNING: no sandbox is available ({first}).\n"
            "WARNING: the demo runs its tests WITHOUT a sandbox (--sandbox none). Only the demo "
            "falls back like this; real runs refuse instead.",
            file=err,
        )
        return "none"


def demo_settings(base_url: str, sandbox: str, state_dir: Path) -> Any:
    """Settings pointing at the in-process fake server."""
    from k2lsp.config.settings import Settings
    from k2lsp.config.providers import MOONSHOT_PRICES
    from k2lsp.config.model import SandboxKind

    return Settings(
        provider="openai-compatible",
        base_url=base_url,
        model=MODEL,
        api_key=DEMO_KEY,
        sandbox=typing.cast(SandboxKind, sandbox),  # validated when built
        max_steps=20,
        state_dir=state_dir,
        prices=dict(MOONSHOT_PRICES),
        test_command=None
        if sandbox in ("auto", "docker", "bwrap")
        else f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {sys.executable} -m pytest -q -p no:cacheprovider",
    )


def banner(err: Any) -> None:
    """Say loudly that this is a replay."""
    line = "=" * 72
    print(
        f"{line}\n k2lsp demo: a REPLAY of recorded K2 moves (no API key, no model call).\n"
        " The agent loop, tools, sandbox, git and the openai SDK are real; the model's\n"
        f" replies come from {SESSION.name} via a local fake K2 server. Costs are shown\n"
        f" at Moonshot's list prices; nothing is billed.\n{line}",
        file=err,
    )


def cli(argv: list[str]) -> int:
    """Entry of `k2lsp demo`."""
    p = argparse.ArgumentParser(prog="k2lsp demo", description="Replay a recorded K2 session.")
    p.add_argument("--json", action="store_true", help="print the event stream as JSON lines")
    p.add_argument("--sandbox", choices=("auto", "docker", "bwrap", "none"), default="auto")
    p.add_argument("--dir", help="where to create the example repository (default: a temp dir)")
    p.add_argument("--fast", action="store_true", help="no streaming delay")
    args = p.parse_args(argv)
    return asyncio.run(_demo(args))


async def _demo(args: argparse.Namespace) -> int:
    from k2lsp.cli.render import JsonRenderer, TerminalRenderer
    from k2lsp.fake.script import load_script
    from k2lsp.fake.server import FakeK2Server
    from k2lsp.agent.session import RunRequest, RunResult, execute_run

    err = sys.stderr
    banner(err)
    parent = Path(args.dir).resolve() if args.dir else Path(tempfile.mkdtemp(prefix="k2lsp-demo-"))
    parent.mkdir(parents=True, exist_ok=True)
    repo = make_repo(parent)
    script = json.loads(SESSION.read_text(encoding="utf-8"))
    if args.fast:
        script = [{**item, "delay_s": 0.0} for item in script]
    sandbox = pick_sandbox(args.sandbox, repo, err)
    sink = JsonRenderer(sys.stdout) if args.json else TerminalRenderer()
    with FakeK2Server(load_script(script), models=[MODEL]) as srv:
        settings = demo_settings(srv.base_url, sandbox, parent / "state")

        async def deliver(result: RunResult) -> RunResult:
            if result.changes:
                from k2lsp.cli.run import deliver as cli_deliver

                ns = argparse.Namespace(patch_file=None, json=args.json)
                await asyncio.to_thread(cli_deliver, result, "apply", ns, TASK)
            return result

        result = await execute_run(
            RunRequest(task=TASK, repo=repo), settings, [sink], finish=deliver
        )
    if result.run_copy is not None:
        result.run_copy.cleanup()
    print(
        f"\n{'-' * 72}\nThe replayed run changed {len(result.changes.files)} file(s):\n", file=err
    )
    print(result.changes.diff() or "(no changes)", file=err)
    print(
        f"The result is in {repo} (see `git -C {repo} diff`).\n"
        f"Trajectory: {result.trajectory}\n"
        "This was a replay. Set K2LSP_API_KEY (or MOONSHOT_API_KEY) and run\n"
        f'  k2lsp --task "..." --repo {repo}\nto let the real model work.',
        file=err,
    )
    return result.outcome.exit_code
