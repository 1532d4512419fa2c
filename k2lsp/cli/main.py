"""The `k2lsp` command line: argument parsing and sub-command dispatch.

    k2lsp [--stdio | --tcp --port N]          language server (k2lsp.server.app:serve)
    k2lsp --task "..." [flags]                 headless run (k2lsp.cli.run)
    k2lsp tool NAME --json '{...}'             run one tool by hand
    k2lsp acp                                  ACP agent on stdio (k2lsp.acp)
    k2lsp models | demo | doctor | sandbox build | undo | gc | trust [PATH]

Start-up is a feature: this module imports only the standard library at import time, so
`k2lsp --help` stays fast; each command imports what it needs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping

from k2lsp import __version__

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "tool": (
        "k2lsp.cli.tool:cli_tool",
        "run one tool by hand and print what the model would see",
    ),
    "models": (
        "k2lsp.cli.tool:cli_models",
        "list the models the configured host offers",
    ),
    "doctor": (
        "k2lsp.cli.doctor:cli",
        "check the installation, key, host and sandbox",
    ),
    "sandbox": (
        "k2lsp.sandbox.image:cli",
        "build the sandbox image (`k2lsp sandbox build`)",
    ),
    "undo": (
        "k2lsp.cli.undo:cli_undo",
        "restore the files as they were before the last delivery",
    ),
    "gc": ("k2lsp.cli.gc:cli_gc", "remove leftover run copies"),
    "events-schema": (
        "k2lsp.agent.event_schema:cli",
        "print the JSON schema of the --json event stream (docs/events.md)",
    ),
    "acp": ("k2lsp.acp.main:cli", "serve the Agent Client Protocol on stdio (agent panels)"),
    "trust": (
        "k2lsp.config.trust:cli",
        "let a repository's k2lsp.toml set the key/sandbox settings",
    ),
}
SERVER_FLAGS = ("--stdio", "--tcp", "--ws", "--port", "--host", "--log-level", "--max-message-mb")
OUTPUTS = ("apply", "branch", "patch")
SANDBOXES = ("auto", "docker", "bwrap", "none")
MODES = ("task", "ask", "fix_diagnostic", "explain", "refactor", "write_tests", "fix_failing_test")


def build_parser(commands: Mapping[str, tuple[str, str]] | None = None) -> argparse.ArgumentParser:
    """The parser of the headless run (and of `--help`, listing `commands`)."""
    commands = SUBCOMMANDS if commands is None else commands
    from k2lsp.errors import EXIT_CODES

    rows = [(name, doc) for name, (_, doc) in commands.items()]
    rows.append(("(none)", "with no arguments, --stdio or --tcp --port N: the language server"))
    width = max(len(name) for name, _ in rows)
    codes = sorted((code, o.value.replace("_", " ")) for o, code in EXIT_CODES.items())
    epilog = "commands:\n" + "\n".join(f"  {name:<{width}} {doc}" for name, doc in rows)
    epilog += "\n\nexit codes: " + ", ".join(f"{code} {name}" for code, name in codes)
    p = argparse.ArgumentParser(
        prog="k2lsp",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog,
        description="Kimi K2 Thinking as a language server and a headless coding agent.",
    )
    p.add_argument("--version", action="version", version=f"k2lsp {__version__}")
    p.add_argument("--task", help="what to do (use '-' to read it from stdin)")
    p.add_argument("--repo", default=".", help="project folder (default: current directory)")
    p.add_argument("--mode", choices=MODES, default="task", help="kind of request (default: task)")
    p.add_argument("--json", action="store_true", help="print the event stream as JSON lines")
    p.add_argument(
        "--output",
        choices=OUTPUTS,
        help="deliver by writing files (apply), committing on a branch (branch) or "
        "printing a diff (patch); default: branch when CI is set, else apply",
    )
    p.add_argument("--patch-file", metavar="F", help="with --output patch: write the diff to F")
    # Settings flags take text; k2lsp.config.model validates them like every other layer.
    p.add_argument("--max-steps", metavar="N", help="step budget (default 300)")
    p.add_argument("--budget-usd", metavar="X", help="cost budget in USD")
    p.add_argument("--max-tokens", metavar="N", help="total token budget")
    p.add_argument("--timeout", metavar="S", help="wall-time budget (s)")
    p.add_argument(
        "--sandbox", metavar="KIND", help=f"where tests and commands run: {', '.join(SANDBOXES)}"
    )
    p.add_argument("--provider", metavar="P", help="host preset (moonshot, openrouter, ...)")
    p.add_argument("--model", metavar="M", help="model id (see `k2lsp models`)")
    p.add_argument("--base-url", metavar="U", help="OpenAI-compatible base URL")
    p.add_argument(
        "--trust-repo",
        action="store_true",
        help="apply the repository's own provider/base_url/sandbox/allow_* settings without "
        "`k2lsp trust` (CI on your own checkout; same as K2LSP_TRUST_REPO=1)",
    )
    p.add_argument(
        "--heavy",
        metavar="N",
        type=int,
        help="heavy mode: N candidate runs in parallel, the best by test evidence (docs/heavy.md)",
    )
    p.add_argument("--keep", action="store_true", help="keep the run copy after delivery")
    p.add_argument("--trajectory", metavar="F", help="write the trajectory JSONL to F")
    return p


def _load(target: str, name: str) -> Callable[[list[str]], int] | None:
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            error(f"`k2lsp {name}` is not available in this build ({module_name} is missing)")
            return None
        raise
    func = getattr(module, func_name, None)
    if func is None:
        error(f"`k2lsp {name}` is not available in this build ({target} is missing)")
    return func


def error(message: str, hint: str = "") -> None:
    """Print one readable error line (secrets redacted) to stderr."""
    from k2lsp.redact import redact

    text = redact(str(message).strip())
    print(f"k2lsp: error: {text}" + (f"\n  {hint}" if hint else ""), file=sys.stderr)


def _log_to_stderr() -> None:
    """Warnings as plain stderr lines, through the redaction boundary (loaded on first use,
    so `k2lsp --help` does not pay for the redactor's patterns)."""
    import logging

    class Redacting(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            from k2lsp.redact.boundary import safe_text

            return safe_text(super().format(record))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Redacting("%(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def _is_server(argv: list[str], commands: Mapping[str, tuple[str, str]]) -> bool:
    if not argv:
        return True
    if argv[0] in commands:  # `k2lsp acp --log-level INFO` is the subcommand's flag
        return False
    return any(a.split("=")[0] in SERVER_FLAGS for a in argv) and "--task" not in argv


def main(argv: list[str] | None = None, extra: Mapping[str, tuple[str, str]] | None = None) -> int:
    """Dispatch to the server, a sub-command or the headless run; returns the exit code.

    `extra` adds sub-commands from layers above the CLI (`k2lsp demo`, added by
    `k2lsp.__main__`, replays a session through this CLI, so the CLI cannot import it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {**SUBCOMMANDS, **(extra or {})}
    try:
        if _is_server(argv, commands):
            serve = _load("k2lsp.server.app:serve", "server")
            return 2 if serve is None else int(serve(argv) or 0)
        _log_to_stderr()
        if argv[0] in commands:
            func = _load(commands[argv[0]][0], argv[0])
            return 2 if func is None else int(func(argv[1:]) or 0)
        args = build_parser(commands).parse_args(argv)
        if args.heavy is not None:
            from k2lsp.cli.heavy import run_heavy_headless

            return run_heavy_headless(args)
        from k2lsp.cli.run import run_headless

        return run_headless(args)
    except KeyboardInterrupt:
        error("cancelled")
        return 130
    except Exception as exc:  # never a traceback for users
        return report_exception(exc)


def report_exception(exc: BaseException) -> int:
    """Print a readable line for `exc` and return its exit code."""
    from k2lsp.errors import K2lspError

    if isinstance(exc, K2lspError):
        error(str(exc))
        return exc.outcome.exit_code
    if os.environ.get("K2LSP_DEBUG"):
        import traceback

        traceback.print_exception(exc)
    error(
        f"internal error: {type(exc).__name__}: {exc}",
        "this is a bug in k2lsp; rerun with K2LSP_DEBUG=1 for the traceback and report it",
    )
    return 70
