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
from collections.abc import Callable

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
    "demo": ("k2lsp.demo.demo:cli", "replay a recorded K2 session fixing a failing test (no key)"),
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


def build_parser() -> argparse.ArgumentParser:
    """The parser of the headless run (and of `--help`)."""
    epilog = "commands:\n" + "\n".join(
        f"  {name:<8} {doc}" for name, (_, doc) in SUBCOMMANDS.items()
    )
    epilog += (
        "\n  (none)   with no arguments, --stdio or --tcp --port N: the language server"
        "\n\nexit codes: 0 success, 1 tests failed, 2 usage error, 3 provider error, "
        "4 budget exhausted, 5 edit conflict, 6 sandbox unavailable, 130 cancelled"
    )
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


def _is_server(argv: list[str]) -> bool:
    if not argv:
        return True
    if argv[0] in SUBCOMMANDS:  # `k2lsp acp --log-level INFO` is the subcommand's flag
        return False
    return any(a.split("=")[0] in SERVER_FLAGS for a in argv) and "--task" not in argv


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the server, a sub-command or the headless run; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if _is_server(argv):
            serve = _load("k2lsp.server.app:serve", "server")
            return 2 if serve is None else int(serve(argv) or 0)
        _log_to_stderr()
        if argv[0] in SUBCOMMANDS:
            func = _load(SUBCOMMANDS[argv[0]][0], argv[0])
            return 2 if func is None else int(func(argv[1:]) or 0)
        args = build_parser().parse_args(argv)
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
