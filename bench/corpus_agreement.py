"""Agreement table: `run_tests` as k2lsp runs it vs the project's own runner run directly.

For every corpus package (bench/corpus.py) and every sandbox backend available here, a user's
folder is made (git repo + gitignored env), then:
  - direct: the project's own runner in that folder, in its own env, no sandbox;
  - k2lsp: a real run copy (as a run makes it), the sandbox the run would open for that
    backend (project env bound in), detection, the run and the parsers, exactly like
    `k2lsp tool run_tests`/a headless run.
Prints package, shape, runner, counts both ways, backend, time, and each disagreement with the
reason read from the k2lsp report. Never fails; figures only.

    python bench/corpus_agreement.py [--backend bwrap|docker|all] [package ...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import BY_NAME, PACKAGES, Package, available, direct_command, user_project
from k2lsp.testrun.model import TestReport


def direct_counts(pkg: Package, folder: Path) -> tuple[TestReport, float]:
    """The project's own runner in `folder` (no sandbox); counts read from its summary."""
    from k2lsp.testrun.jsparse import parse_mocha, parse_tap
    from k2lsp.testrun.parsers import parse_summary

    cmd, env = direct_command(pkg, folder)
    base = {"PATH": f"{folder}/node_modules/.bin:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp"}
    start = time.monotonic()
    out = subprocess.run(
        cmd, shell=True, cwd=folder, env={**base, **env}, capture_output=True, text=True,
        errors="replace", timeout=900,
    )  # fmt: skip
    took = time.monotonic() - start
    report = TestReport("direct", cmd, exit_code=out.returncode)
    text = out.stdout + "\n" + out.stderr
    if not (parse_summary(text, report, folder) or parse_mocha(text, report, folder)):
        parse_tap(text, report, folder)
    report.output_tail = text[-20000:]
    return report, took


def k2lsp_counts(folder: Path, backend: str, state: Path) -> tuple[TestReport, float, str]:
    """run_tests in a real run copy of `folder`, in the sandbox a run would open."""
    from k2lsp.runs.runcopy import RunCopy
    from k2lsp.testrun.runner import run_tests
    from k2lsp.testrun.sandbox_select import open_sandbox

    copy = RunCopy.create(source=folder, run_id=f"agree-{uuid.uuid4().hex[:8]}", state_dir=state)
    try:
        start = time.monotonic()
        sandbox, _pre = open_sandbox(SimpleNamespace(sandbox=backend), copy.root, folder)
        try:
            report = run_tests(sandbox, timeout_s=900)
            name = sandbox.name
        finally:
            sandbox.close()
        return report, time.monotonic() - start, name
    finally:
        copy.cleanup()


def backends(choice: str) -> list[str]:
    """The sandbox backends available here among `choice`."""
    from k2lsp.sandbox import bwrap as sandbox_bwrap
    from k2lsp.sandbox import docker as sandbox_docker

    out = []
    if choice in ("bwrap", "all") and sandbox_bwrap.problem() is None:
        out.append("bwrap")
    if choice in ("docker", "all") and sandbox_docker.problem("k2lsp-sandbox:latest") is None:
        out.append("docker")
    return out


def counts(r: TestReport) -> str:
    """`passed/failed/skipped` (+errors when any)."""
    return f"{r.passed}/{r.failed}/{r.skipped}" + (f"+{r.errors}e" if r.errors else "")


def agree(a: TestReport, b: TestReport) -> bool:
    """Same passed, failed+errors and skipped counts, and at least one test ran."""
    return (a.passed, a.failed + a.errors, a.skipped) == (
        b.passed,
        b.failed + b.errors,
        b.skipped,
    ) and a.total > 0


def main() -> None:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="all", choices=["bwrap", "docker", "all"])
    ap.add_argument("packages", nargs="*")
    args = ap.parse_args()
    pkgs = [BY_NAME[n] for n in args.packages] if args.packages else PACKAGES
    pkgs = [p for p in pkgs if available(p)]
    kinds = backends(args.backend)
    head = ("package", "shape", "runner", "direct p/f/s", "k2lsp p/f/s", "backend", "time")
    print("{:27} {:44} {:9} {:13} {:13} {:7} {:>6}".format(*head))
    total = same = 0
    problems = []
    with tempfile.TemporaryDirectory(prefix="k2lsp-agree-") as tmp:
        for pkg in pkgs:
            folder = user_project(pkg, Path(tmp) / pkg.key)
            direct, _dt = direct_counts(pkg, folder)
            for kind in kinds:
                report, took, name = k2lsp_counts(folder, kind, Path(tmp) / "state")
                total += 1
                ok = agree(direct, report)
                same += ok
                row = (pkg.key, pkg.shape[:44], report.runner, counts(direct), counts(report))
                mark = "" if ok else "DIFFERS"
                print("{:27} {:44} {:9} {:13} {:13}".format(*row), f"{name:7} {took:5.1f}s {mark}")
                if not ok:
                    why = report.diagnosis or "; ".join(report.notes) or report.headline()
                    if direct.failed + direct.errors > report.failed + report.errors:
                        first = re.search(
                            r"^(FAIL|ERROR|FAILED|not ok)\b.*$", direct.output_tail, re.M
                        )
                        seen = first.group(0) if first else "(see its output)"
                        why += (
                            f"; only the direct run (uid {os.getuid()}, no sandbox) failed: {seen}"
                        )
                    problems.append(f"{pkg.key} [{name}]: k2lsp `{report.command}`: {why}")
    print(f"\nagreement: {same}/{total} ({100 * same / max(total, 1):.0f}%)")
    for line in problems:
        print("  DISAGREES " + line)


if __name__ == "__main__":
    main()
