"""What happened when a test run printed no counts: an honest, specific headline.

Read from the exit code and the output, most specific first: killed (out of memory, SIGKILL,
timeout), command not found, a missing runner or plugin (pytest usage error naming `--cov`),
permission errors, import errors, "no tests collected", and "passed, counts unknown" for a
runner that exited 0 without a summary we can read. Never "check test discovery" by default.
"""

from __future__ import annotations

import re

_PLUGIN_FLAGS = {
    "--cov": "pytest-cov",
    "--no-cov": "pytest-cov",
    "-n": "pytest-xdist",
    "--numprocesses": "pytest-xdist",
    "--timeout": "pytest-timeout",
    "--benchmark": "pytest-benchmark",
    "--doctest-plus": "pytest-doctestplus",
    "--flake8": "pytest-flake8",
    "--mypy": "pytest-mypy",
    "--reruns": "pytest-rerunfailures",
    "--asyncio-mode": "pytest-asyncio",
    "--pep8": "pytest-pep8",
    "--black": "pytest-black",
    "--randomly": "pytest-randomly",
    "--hypothesis": "hypothesis",
}


def missing_plugin(flag: str) -> str:
    """The pytest plugin that provides `flag` ('' when unknown)."""
    name = flag.split("=", 1)[0]
    for prefix, plugin in _PLUGIN_FLAGS.items():
        if name == prefix or name.startswith(prefix + "-") or name.startswith(prefix + "_"):
            return plugin
    return ""


def _first_error(output: str) -> str:
    for line in output.splitlines():
        s = line.strip()
        if re.match(r"(E\s+)?\w*(Error|Exception)\b[:]|^error[:\[]|^fatal:|^ERROR\b", s, re.I):
            return s[:240]
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return lines[-1][:240] if lines else ""


def diagnose(
    exit_code: int, output: str, limits_hit: list[str] | None = None, runner: str = ""
) -> str:
    """A one-line account of a run without counts."""
    limits = set(limits_hit or [])
    output = re.sub(r"^\[k2lsp: [^\]]*\]$", "", output, flags=re.M)  # the sandbox's own notes
    if "memory" in limits or re.search(
        r"\bout of memory\b|MemoryError|Cannot allocate memory", output
    ):
        return "killed: out of memory (raise the sandbox memory limit or run fewer tests)"
    if exit_code in (137, -9):
        return "killed by SIGKILL (exit 137): the sandbox or the system stopped the command"
    if "pids" in limits:
        return "stopped: too many processes for the sandbox's pids limit"
    if exit_code in (-15, 143):
        return "terminated by SIGTERM"
    m = re.search(
        r"(?:^|\s)(?:sh: \d+: )?(?P<cmd>[\w.+/-]+): (?:command )?not found"
        r"|env: ['\u2018]?(?P<env>[\w.+-]+)['\u2019]?: No such file or directory",
        output,
    )
    if exit_code == 127 or m:
        what = (m["cmd"] or m["env"]) if m else "the test command"
        return f"command not found: {what} (is it installed in the sandbox?)"
    m = re.search(r"No module named '?(?P<mod>pytest|unittest|nose2?|tox|nox)'?", output)
    if m:
        return f"runner not installed: {m['mod']} is not importable in this environment"
    m = re.search(r"unrecognized arguments: (?P<args>.+)", output)
    if m:
        args = m["args"].strip()
        plugins = sorted({p for a in args.split() if (p := missing_plugin(a))})
        hint = f" (missing plugin {', '.join(plugins)})" if plugins else ""
        return (
            f"usage error: unrecognized arguments {args}{hint}; "
            "pass command with `-o addopts=` to drop the configured options"
        )
    m = re.search(r"PermissionError: .*|Permission denied.*|EACCES[^\n]*", output)
    if m:
        return f"permission error: {m.group(0).strip()[:200]}"
    m = re.search(r"(ModuleNotFoundError|ImportError): (?P<msg>[^\n]+)", output)
    if m and exit_code != 0:
        return f"import error: {m['msg'].strip()[:200]}"
    m = re.search(r"Cannot find module '(?P<mod>[^']+)'", output)
    if m:
        return f"import error: Cannot find module '{m['mod']}' (is node_modules installed?)"
    if (runner == "pytest" and exit_code == 5) or re.search(r"^=*\s*no tests ran", output, re.M):
        return "no tests collected (exit 5): the runner found no test in the given paths"
    if exit_code == 0:
        return "passed, counts unknown: the runner exited 0 but printed no summary k2lsp can read"
    if runner == "pytest" and exit_code == 4:
        return f"usage error (exit 4): {_first_error(output)}"
    if runner == "pytest" and exit_code == 2:
        return f"interrupted (exit 2), usually an error while collecting: {_first_error(output)}"
    first = _first_error(output)
    return f"exit code {exit_code}" + (f": {first}" if first else " with no output")
