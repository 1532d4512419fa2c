"""`k2lsp tool NAME --json '{...}'` (run one tool by hand on a folder and print the text the
model would see; exit 1 on a tool error) and `k2lsp models` (what the host offers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from k2lsp.errors import UsageError

SANDBOX_TOOLS = ("run_tests", "run_command")


def _tool_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="k2lsp tool", description="Run one tool by hand.")
    p.add_argument("name", nargs="?", help="tool name (omit to list the tools)")
    p.add_argument(
        "--json",
        dest="args_json",
        default="{}",
        metavar="'{...}'",
        help="the tool's arguments as one JSON object",
    )
    p.add_argument("--repo", default=".", help="folder the tool works in (default: .)")
    p.add_argument(
        "--sandbox",
        metavar="KIND",
        help="where run_tests / run_command run: auto, docker, bwrap, none",
    )
    return p


FLAG_LABELS = {"sandbox": "--sandbox", "provider": "--provider", "base_url": "--base-url"}


def cli_tool(argv: list[str]) -> int:
    """Entry of `k2lsp tool`."""
    from k2lsp.agent.events import Emitter
    from k2lsp.agent.loop import model_text
    from k2lsp.config import load_settings
    from k2lsp.tools import build_registry
    from k2lsp.tools.base import ToolContext
    from k2lsp.workspace import Workspace

    args = _tool_parser().parse_args(argv)
    registry = build_registry()
    if not args.name:
        for t in registry.tools():
            print(f"{t.name:<16} {t.description.splitlines()[0]}")
        return 0
    tool_ = registry.get(args.name)
    if tool_ is None:
        raise UsageError(f"unknown tool {args.name!r}; available: {', '.join(registry.names())}")
    try:
        tool_args = json.loads(args.args_json)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f'--json is not valid JSON ({exc}); e.g. --json \'{{"path": "a.py"}}\''
        ) from None
    if not isinstance(tool_args, dict):
        raise UsageError('--json must be one JSON object, e.g. --json \'{"path": "a.py"}\'')
    repo = Path(args.repo).expanduser()
    if not repo.is_dir():
        raise UsageError(
            f"folder {str(repo)!r} does not exist; pass --repo with your project folder"
        )
    settings = load_settings(repo.resolve(), {"sandbox": args.sandbox}, labels=FLAG_LABELS)
    sandbox = _sandbox_for(args.name, settings, repo.resolve())
    ctx = ToolContext(
        workspace=Workspace.from_settings(repo, settings),
        sandbox=sandbox,
        emitter=Emitter("manual"),
        settings=settings,
    )
    try:
        result = asyncio.run(registry.execute(args.name, tool_args, ctx))
    finally:
        if sandbox is not None:
            sandbox.close()
    print(model_text(result))
    return 0 if result.ok else 1


def _sandbox_for(name: str, settings: Any, root: Path) -> Any:
    from k2lsp.testrun.sandbox_select import open_sandbox

    if name not in SANDBOX_TOOLS:
        return None  # read and edit tools never run commands: don't probe the daemons
    return open_sandbox(settings, root)[0]


def cli_models(argv: list[str]) -> int:
    """Entry of `k2lsp models`: ids and context lengths from GET /models."""
    from k2lsp.config import load_settings
    from k2lsp.redact import register_secret

    p = argparse.ArgumentParser(prog="k2lsp models", description="List the host's models.")
    p.add_argument("--provider")
    p.add_argument("--base-url")
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)
    settings = load_settings(
        Path.cwd(), {"provider": args.provider, "base_url": args.base_url}, labels=FLAG_LABELS
    )
    register_secret(settings.api_key)
    models = asyncio.run(_list_models(settings))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": m.id,
                        "context_length": m.context_length,
                        "supports_reasoning": m.supports_reasoning,
                        "context_source": m.context_source,
                    }
                    for m in models
                ]
            )
        )
        return 0
    if not models:
        print("the host lists no models", file=sys.stderr)
        return 0
    width = max(len(m.id) for m in models)
    for m in models:
        ctx = f"{m.context_length:,}" if m.context_length else "? (the host reports none)"
        source = f"  (from {m.context_source})" if m.context_source else ""
        print(f"{m.id:<{width}}  context {ctx}{source}")
    return 0


async def _list_models(settings: Any) -> list[Any]:
    from k2lsp.model.client import K2Client

    client = K2Client(settings)
    try:
        return list(await client.list_models())
    finally:
        await client.aclose()
