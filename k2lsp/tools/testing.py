"""Tools that execute things in the sandbox: `run_tests` (parsed counts and failures) and
`run_command` (subject to the approval policy).

run_tests emits a `test_result` event, stores the structured result in
`ctx.state["last_test_result"]` (failures carry test_id, workspace-relative path, line and
message), keeps red→green evidence in `ctx.state["test_evidence"]`, and does not credit a run
in which test files were changed unless the task allows it.

run_tests with a `command` other than the configured or detected test command goes through the
same approval as run_command, unless it is a plain runner invocation (pytest, python -m
pytest/unittest, go test, cargo test) with only harmless flags (no shell syntax, no flags that
write, delete or load anything outside the project's own test code).

run_command approval: a command matching one of `settings.allow_commands` (fnmatch globs) runs;
otherwise, when `ctx.state["approve"]` is set (an async callable `(kind, detail) -> bool`, the
language server asks the user), its answer decides; otherwise (headless) it is refused.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
from typing import Any

from pydantic import BaseModel, Field

from k2lsp.errors import K2lspError
from k2lsp.sandbox.base import CommandResult, Sandbox
from k2lsp.testrun.model import TestReport
from k2lsp.testrun.runner import format_report, run_tests
from k2lsp.tools.base import ToolContext, ToolError, ToolResult, tool
from k2lsp.tools.test_guard import (
    Evidence,
    record_evidence,
    refusal,
    review_run_copy,
    tests_may_change,
)

DEFAULT_TIMEOUT_S = 600.0


class RunTestsParams(BaseModel):
    """Arguments of run_tests."""

    command: str | None = Field(
        default=None,
        description=(
            "Test command to run instead of the detected one (e.g. 'pytest -q', 'go test ./...', "
            "'npm test'). Omit to use the project's configured or detected runner."
        ),
    )
    paths: list[str] | None = Field(
        default=None,
        description=(
            "Test files, folders or test ids to run (e.g. 'tests/test_x.py::test_y'); "
            "omit to run the whole suite."
        ),
    )


class RunCommandParams(BaseModel):
    """Arguments of run_command."""

    command: str = Field(
        description="A shell command, run in the workspace root inside the sandbox."
    )
    timeout_s: float | None = Field(
        default=None, gt=0, le=3600, description="Kill the command after this many seconds."
    )


def _sandbox(ctx: ToolContext) -> Sandbox:
    if ctx.sandbox is None:
        raise ToolError(
            "no sandbox is configured for this run, so commands cannot be executed; "
            "the user can enable one (see `k2lsp doctor`)"
        )
    return ctx.sandbox


def _timeout(ctx: ToolContext, requested: float | None = None) -> float:
    configured = float(
        getattr(ctx.settings, "command_timeout_s", DEFAULT_TIMEOUT_S) or DEFAULT_TIMEOUT_S
    )
    return min(requested, configured) if requested else configured


def _test_paths(ctx: ToolContext, paths: list[str] | None) -> list[str]:
    """Confine test paths (`file::test` ids keep their suffix) to the workspace."""
    out = []
    for raw in paths or []:
        file, sep, rest = raw.partition("::")
        try:
            rel = ctx.workspace.rel(ctx.workspace.resolve(file))
        except K2lspError as exc:
            raise ToolError(str(exc)) from None
        out.append(rel + sep + rest)
    return out


@tool("run_tests", RunTestsParams, writes="any")
async def run_tests_tool(ctx: ToolContext, args: RunTestsParams) -> ToolResult:
    """Run the project's tests in the sandbox. Returns counts (passed, failed, errors, skipped),
    each failure's test id, file:line and assertion message, then the tail of the raw output.
    '0 tests ran' is not a success. Changing test files to make them pass is not allowed unless
    the task says so."""
    sandbox = _sandbox(ctx)
    configured = getattr(ctx.settings, "test_command", None)
    command = args.command or configured
    paths = _test_paths(ctx, args.paths)
    if args.command and args.command.strip():
        denied = await _approve_test_command(ctx, sandbox, args.command, configured)
        if denied is not None:
            raise ToolError(
                f"run_tests refused the command: {denied.rstrip('.')}. Omit `command` to run the "
                "project's configured or detected tests (pass `paths` to narrow them)."
            )
    try:
        report = await asyncio.to_thread(
            run_tests, sandbox, command=command, paths=paths, timeout_s=_timeout(ctx)
        )
    except K2lspError as exc:
        raise ToolError(str(exc)) from None
    problems = [] if tests_may_change(ctx) else await asyncio.to_thread(review_run_copy, ctx.root)
    turned = await asyncio.to_thread(record_evidence, ctx.state, ctx.root, report)
    credited = report.ok and not problems
    _publish(ctx, report, problems, credited)
    for ev in turned:
        _evidence(ctx, ev)
    text = format_report(report, warning=_none_warning(sandbox))
    if problems:
        text = "NOT CREDITED: " + refusal(problems) + "\n\n" + text
    return ToolResult(credited, text, report.headline()[:120])


_PLAIN = re.compile(r"[A-Za-z0-9_./:=,@+\- ]+")
_PYTHON = re.compile(r"python[0-9.]*")
_PYTEST_FLAGS = re.compile(
    r"-q|-qq|-v|-vv|-x|-s|-l|-rA|-ra|--no-header|--lf|--ff|--exitfirst|--quiet|--verbose"
    r"|--tb=(auto|long|short|line|native|no)|--maxfail=[0-9]+|--durations=[0-9]+|no:[A-Za-z_]+"
    r"|-p|--no-cov|--import-mode=(prepend|append|importlib)|-o|addopts=|--override-ini=addopts="
    r"|--rootdir=[A-Za-z0-9_./-]*|--continue-on-collection-errors|--doctest-modules"
)
_NODE_FLAGS = re.compile(
    r"--test|--test-reporter=(tap|spec|dot)|--test-only|--test-name-pattern=[A-Za-z0-9_ .-]+"
    r"|[A-Za-z0-9_./-]+\.(js|mjs|cjs|ts)|[A-Za-z0-9_./-]+/"
)
_RUNNER_FLAGS = {
    "go": re.compile(r"-v|-short|-race|-failfast|-count=[0-9]+|\./[A-Za-z0-9_/]*(\.\.\.)?"),
    "cargo": re.compile(r"-q|--quiet|--workspace|--all|--lib|--bins|--tests|--no-fail-fast"),
}


def plain_test_command(command: str) -> bool:
    """A bare test-runner invocation with only harmless flags (no approval needed)."""
    if not _PLAIN.fullmatch(command):
        return False
    words = command.split()
    if not words:
        return False
    prog = words[0].rsplit("/", 1)[-1]  # only an interpreter may be named by its path
    if words[0] in ("go", "cargo") and words[1:2] == ["test"]:
        flags, allowed = words[2:], _RUNNER_FLAGS[prog]
    elif words[0] in ("pytest", "py.test"):
        flags, allowed = words[1:], _PYTEST_FLAGS
    elif words[0] == "node" and words[1:2] == ["--test"]:
        flags, allowed = words[2:], _NODE_FLAGS
    elif _PYTHON.fullmatch(prog) and words[1:3] in (["-m", "pytest"], ["-m", "unittest"]):
        flags, allowed = words[3:], _PYTEST_FLAGS
    else:
        return False
    for i, word in enumerate(flags):
        if word == "-p" and i + 1 < len(flags) and flags[i + 1].startswith("no:"):
            continue  # `-p no:NAME` only disables a plugin
        if word == "-p" or (word == "-o" and flags[i + 1 : i + 2] != ["addopts="]):
            return False  # `-p NAME` loads a plugin; `-o` only to clear addopts
        if word == "addopts=" and flags[i - 1 : i] != ["-o"]:
            return False
        if not allowed.fullmatch(word) or (word.startswith("no:") and flags[i - 1 : i] != ["-p"]):
            return False
    return True


async def _approve_test_command(
    ctx: ToolContext, sandbox: Sandbox, command: str, configured: str | None
) -> str | None:
    """None when run_tests may run `command`, else why not (run_command's approval)."""
    from k2lsp.testrun.detect import detect_command

    known = configured
    if not known:
        try:
            binds = list(getattr(sandbox.settings, "ro_binds", None) or [])
            known = await asyncio.to_thread(detect_command, sandbox.root, binds)
        except K2lspError:
            known = None
    if known and command.split() == known.split():
        return None
    if plain_test_command(command):
        return None
    return await approve_command(ctx, command)


def _none_warning(sandbox: Sandbox) -> str:
    from k2lsp.sandbox.base import NONE_WARNING

    return NONE_WARNING if sandbox.name == "none" else ""


def _publish(ctx: ToolContext, report: TestReport, problems: list[str], credited: bool) -> None:
    """Store the structured result and emit the test_result event."""
    data = report.to_dict()
    data["ok"] = credited
    data["test_changes"] = problems
    data["failures"] = [
        {"test_id": f.test_id, "path": f.path, "line": f.line, "message": f.message, "kind": f.kind}
        for f in report.failures
    ]
    ctx.state["last_test_result"] = data
    if ctx.emitter is not None:
        ctx.emitter.emit(
            "test_result",
            passed=report.passed,
            failed=report.failed,
            errors=report.errors,
            skipped=report.skipped,
            command=report.command,
            duration=report.duration,
            status=report.status(),
            total=report.total,
            ok=credited,
        )


def _evidence(ctx: ToolContext, ev: Evidence) -> None:
    """A `status` event (phase test_evidence) carrying the whole red->green record."""
    if ctx.emitter is None:
        return
    first = ev.red_message.splitlines()[0] if ev.red_message else ""
    message = f"red->green: {ev.test_id} failed before ({ev.red_location}: {first}) and passes now"
    ctx.emitter.emit(
        "status",
        step=None,
        max_steps=None,
        phase="test_evidence",
        message=message,
        evidence=ev.to_dict(),
    )


def allowed_by_globs(command: str, globs: list[str]) -> bool:
    """Every part of a command chain (`;`, `&&`, `||`, `|`, newlines) matches a glob; command
    substitution and redirections are never approved by a glob."""
    if re.search(r"`|\$\(|<\(|>", command):
        return False
    parts = [p.strip() for p in re.split(r"&&|\|\||[;|\n&]", command) if p.strip()]
    return bool(parts) and all(any(fnmatch.fnmatchcase(p, g) for g in globs) for p in parts)


async def approve_command(ctx: ToolContext, command: str) -> str | None:
    """None when `command` may run, else the reason it may not."""
    globs = list(getattr(ctx.settings, "allow_commands", None) or [])
    if globs and allowed_by_globs(command, globs):
        return None
    approve: Any = ctx.state.get("approve")
    if approve is not None:
        if await approve("command", command):
            return None
        return f"the user declined to run `{command}`"
    allowed = ", ".join(repr(g) for g in globs) or "none"
    return (
        f"`{command}` is not allowed by the approval policy (allow_commands: {allowed}) and no "
        "one is there to approve it. Use run_tests for tests; the user can allow commands "
        'with allow_commands globs in k2lsp.toml (e.g. allow_commands = ["make *"]).'
    )


@tool("run_command", RunCommandParams, writes="any")
async def run_command_tool(ctx: ToolContext, args: RunCommandParams) -> ToolResult:
    """Run a shell command in the workspace inside the sandbox (no network) and return its exit
    code and output (capped). Subject to the user's approval policy; prefer run_tests for tests."""
    sandbox = _sandbox(ctx)
    if not args.command.strip():
        raise ToolError("command is empty")
    denied = await approve_command(ctx, args.command)
    if denied is not None:
        raise ToolError(f"run_command refused: {denied}")
    result: CommandResult = await asyncio.to_thread(
        sandbox.run, args.command, timeout_s=_timeout(ctx, args.timeout_s)
    )
    return ToolResult(result.ok, format_command(args.command, result), _summary(result))


def _summary(result: CommandResult) -> str:
    if result.timed_out:
        return f"timed out after {result.duration_s:.0f}s"
    return f"exit code {result.exit_code}" + (
        f"; limits hit: {', '.join(result.limits_hit)}" if result.limits_hit else ""
    )


def format_command(command: str, result: CommandResult) -> str:
    """The text the model sees for a command result."""
    head = [
        f"$ {command}",
        f"exit code {result.exit_code} ({result.duration_s:.1f}s, {result.backend} sandbox)",
    ]
    if result.warning:
        head.insert(0, f"WARNING: {result.warning}")
    if result.timed_out:
        head.append(f"TIMED OUT: killed after {result.duration_s:.0f}s with all its processes")
    if result.limits_hit:
        head.append(f"limits hit: {', '.join(result.limits_hit)}")
    if result.truncated:
        head.append(
            "output was capped (middle omitted); redirect to a file and read parts of it "
            "to see more"
        )
    return "\n".join(head) + "\n" + (result.output if result.output.strip() else "(no output)")
