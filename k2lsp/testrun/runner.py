"""Run a project's tests in a sandbox and turn the output into a TestReport."""

from __future__ import annotations

from pathlib import Path

from k2lsp.sandbox.base import CommandResult, Sandbox, read_untrusted
from k2lsp.testrun.detect import Detection, Runner, build_runner, detect
from k2lsp.testrun.diagnose import diagnose
from k2lsp.testrun.env import foreign_paths, test_env
from k2lsp.testrun.jsparse import parse_mocha, parse_tap
from k2lsp.testrun.model import TestReport
from k2lsp.testrun.parsers import parse_cargo, parse_go_json, parse_junit, parse_summary
from k2lsp.testrun.pydetect import test_files

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
    """Detect (or take) the test command, run it in `sandbox`, parse what it printed.

    When the detected runner collects no test although test files exist, the next plausible
    runner is tried and the report says so.
    """
    root = sandbox.root
    binds = list(getattr(sandbox.settings, "ro_binds", None) or [])
    detection: Detection | None = None
    if not (command and command.strip()):
        detection = detect(root, binds)
        command = detection.command
    report = _run_once(sandbox, command, paths, timeout_s, binds)
    if detection is None or not report.no_tests or report.timed_out or paths:
        return report
    if not test_files(root, limit=1):
        return report
    for fallback, name in detection.fallbacks:
        retry = _run_once(sandbox, fallback, paths, timeout_s, binds)
        if retry.total:
            retry.notes.insert(
                0,
                f"`{command}` ({detection.reason}) collected 0 tests ({report.diagnosis}); "
                f"ran {name} instead",
            )
            return retry
    return report


def _run_once(
    sandbox: Sandbox,
    command: str,
    paths: list[str] | None,
    timeout_s: float,
    binds: list[tuple[str, str]],
) -> TestReport:
    runner = build_runner(sandbox.root, sandbox.scratch, command, paths, binds)
    env = {**TEST_ENV, **test_env(sandbox.root, binds)}
    path = env.pop("PATH", "")
    line = f'PATH="{path}:$PATH"; export PATH; {runner.command}' if path else runner.command
    result = sandbox.run(line, timeout_s=timeout_s, env=env)
    report = parse_result(runner, result, sandbox.root)
    source = getattr(sandbox.settings, "project_source", None)
    foreign = foreign_paths(result.output, sandbox.root, Path(source) if source else None)
    if foreign:
        report.notes.append(
            "the tests imported the project's code from OUTSIDE the run copy (so they did not "
            f"test the run's changes): {', '.join(foreign[:3])}"
        )
    return report


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
    elif runner.name == "mocha":
        parsed = parse_mocha(output, report, root)
    elif runner.name in ("tap", "node-test"):
        parsed = parse_tap(output, report, root)
    if not parsed and not parse_summary(output, report, root):
        parsed = parse_mocha(output, report, root) or parse_tap(output, report, root)
        if not parsed:
            report.parsed_from = "exit-code"
    if report.total == 0:
        report.diagnosis = diagnose(result.exit_code, output, result.limits_hit, runner.name)
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
    parts.extend(f"NOTE: {note}" for note in report.notes)
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
