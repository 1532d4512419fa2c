"""Run a project's tests in a sandbox and turn the output into a TestReport."""

from __future__ import annotations

from pathlib import Path

from k2lsp.sandbox import CommandResult, Sandbox, read_untrusted
from k2lsp.testrun.detect import Runner, build_runner
from k2lsp.testrun.model import TestReport
from k2lsp.testrun.parsers import parse_cargo, parse_go_json, parse_junit, parse_summary

TAIL_CHARS = 4000
TEST_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "CI": "1",
    "NO_COLOR": "1",
    "FORCE_COLOR": "0",
    "CARGO_TERM_COLOR": "never",
    "PY_COLORS": "0",
}


def run_tests(
    sandbox: Sandbox,
    *,
    command: str | None = None,
    paths: list[str] | None = None,
    timeout_s: float = 600.0,
) -> TestReport:
    """Detect (or take) the test command, run it in `sandbox`, parse what it printed."""
    runner = build_runner(sandbox.root, sandbox.scratch, command, paths)
    result = sandbox.run(runner.command, timeout_s=timeout_s, env=TEST_ENV)
    return parse_result(runner, result, sandbox.root)


def parse_result(runner: Runner, result: CommandResult, root: Path) -> TestReport:
    """A TestReport from a finished command, using the runner's machine output when present."""
    report = TestReport(
        runner.name,
        runner.display,
        exit_code=result.exit_code,
        duration=round(result.duration_s, 3),
        timed_out=result.timed_out,
        limits_hit=list(result.limits_hit),
    )
    output = result.output
    parsed = False
    junit = read_untrusted(runner.junit) if runner.junit is not None else None
    if runner.junit is not None and junit is not None:
        # written by hostile code: read without following links, FIFOs or devices
        parsed = parse_junit(junit.decode("utf-8", errors="replace"), report, root)
        runner.junit.unlink(missing_ok=True)
    elif runner.name == "go":
        parsed = parse_go_json(output, report, root)
        output = _go_plain(output)
    elif runner.name == "cargo":
        parsed = parse_cargo(output, report, root)
    if not parsed and not parse_summary(output, report, root):
        report.parsed_from = "exit-code"
    report.output_tail = output[-TAIL_CHARS:]
    return report


def _go_plain(output: str) -> str:
    """The human text inside `go test -json` output (for the raw tail)."""
    import json

    lines = []
    for raw in output.splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw).get("Output", "").rstrip("\n"))
                continue
            except ValueError:
                pass
        lines.append(raw)
    return "\n".join(line for line in lines if line)


def format_report(report: TestReport, *, max_failures: int = 20, warning: str = "") -> str:
    """The text the model sees: headline, failures with locations and messages, output tail."""
    parts = [
        report.headline(),
        f"command: {report.command} (exit code {report.exit_code}, "
        f"{report.duration:.1f}s, counts from {report.parsed_from})",
    ]
    if warning:
        parts.insert(0, f"WARNING: {warning}")
    if report.limits_hit:
        parts.append(f"limits hit: {', '.join(report.limits_hit)}")
    if report.parsed_from == "exit-code":
        parts.append("Could not read test counts from the output; judge from the output below.")
    for failure in report.failures[:max_failures]:
        loc = f" ({failure.location()})" if failure.location() else ""
        label = "ERROR" if failure.kind == "error" else "FAILED"
        parts.append(f"{label} {failure.test_id}{loc}")
        if failure.message:
            parts.extend("    " + line for line in failure.message.splitlines()[:12])
    if len(report.failures) > max_failures:
        parts.append(f"... and {len(report.failures) - max_failures} more failures")
    if report.output_tail:
        parts.append(f"--- last {len(report.output_tail)} characters of output ---")
        parts.append(report.output_tail)
    return "\n".join(parts)
