"""Test evidence for selection, gathered by k2lsp itself (never taken from the model's word).

- `Baseline`: the full suite run once on an untouched copy of the user's state; its failing
  tests are the *targets* (red before any candidate worked).
- `verify`: after a candidate ends, the full suite runs again in a fresh sandbox on its run
  copy. Targets that pass now went red -> green; `touched_tests` lists test files the candidate
  changed (`k2lsp.tools.test_guard.is_test_path`) and what that did to them; the diff size is
  the lines added plus removed.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from k2lsp.errors import K2lspError
from k2lsp.runs.changes import ChangeSet
from k2lsp.tools.test_guard import is_test_path, problems_in_test_change

MAX_FAILURES = 20


@dataclass
class SuiteRun:
    """One full-suite run (or why none could run)."""

    ok: bool = False
    headline: str = ""
    passed_ids: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    ran: bool = False  # a test command ran and reported counts
    error: str = ""


@dataclass
class Baseline:
    """The suite before any candidate: its failing tests are the targets."""

    suite: SuiteRun
    targets: list[str] = field(default_factory=list)


@dataclass
class Evidence:
    """What the tests say about one candidate."""

    targets: list[str] = field(default_factory=list)
    targets_green: bool = False  # every target passes now (vacuous when there are none)
    still_red: list[str] = field(default_factory=list)
    touched_tests: list[str] = field(default_factory=list)
    test_problems: list[str] = field(default_factory=list)
    suite_ok: bool = False
    suite: str = ""  # the suite's headline
    suite_ran: bool = False
    failures: list[dict[str, str]] = field(default_factory=list)
    diff_lines: int = 0
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (events, summary)."""
        return asdict(self)


class Boxes:
    """The sandboxes of running suites, so a cancel can close them (docker removes their
    containers at once; the thread running the suite then ends)."""

    def __init__(self) -> None:
        self.open: set[Any] = set()
        self._lock = threading.Lock()

    def add(self, box: Any) -> None:
        """Track `box` while its suite runs."""
        with self._lock:
            self.open.add(box)

    def discard(self, box: Any) -> None:
        """Stop tracking `box`."""
        with self._lock:
            self.open.discard(box)

    def close_all(self) -> None:
        """Close every tracked sandbox."""
        with self._lock:
            boxes, self.open = list(self.open), set()
        for box in boxes:
            with contextlib.suppress(Exception):
                box.close()


def run_suite(settings: Any, root: Path, source: Path, boxes: Boxes | None = None) -> SuiteRun:
    """The full suite of the copy `root` in a fresh sandbox (closed before returning)."""
    from k2lsp.testrun.runner import run_tests
    from k2lsp.testrun.sandbox_select import open_sandbox

    timeout = float(getattr(settings, "command_timeout_s", 600.0) or 600.0)
    try:
        sandbox, _preflight = open_sandbox(settings, root, source)
    except K2lspError as exc:
        return SuiteRun(error=str(exc), headline=f"no sandbox: {exc}")
    if boxes is not None:
        boxes.add(sandbox)
    try:
        report = run_tests(
            sandbox, command=getattr(settings, "test_command", None), timeout_s=timeout
        )
    except K2lspError as exc:
        return SuiteRun(error=str(exc), headline=f"tests could not run: {exc}")
    finally:
        if boxes is not None:
            boxes.discard(sandbox)
        sandbox.close()
    failures = [
        {
            "test_id": f.test_id,
            "location": f.location(),
            "message": (f.message.strip().splitlines() or [""])[0][:300],
        }
        for f in report.failures[:MAX_FAILURES]
    ]
    return SuiteRun(
        ok=report.ok,
        headline=report.headline(),
        passed_ids=list(report.passed_ids),
        failures=failures,
        ran=report.total > 0,
    )


def take_baseline(
    settings: Any, source: Path, run_id: str, overlay: dict[str, str], boxes: Boxes | None = None
) -> Baseline:
    """Run the suite on a fresh copy of the user's state (removed afterwards)."""
    from k2lsp.runs.runcopy import RunCopy

    try:
        copy = RunCopy.create(
            source=source,
            run_id=run_id,
            overlay=dict(overlay),
            state_dir=getattr(settings, "state_dir", None),
        )
    except K2lspError as exc:
        return Baseline(SuiteRun(error=str(exc), headline=f"no baseline: {exc}"))
    try:
        suite = run_suite(settings, Path(copy.root), source, boxes)
    finally:
        copy.cleanup()
    return Baseline(suite, [f["test_id"] for f in suite.failures])


def diff_lines(changes: ChangeSet) -> int:
    """Lines added plus lines removed (binary files count one each)."""
    total = 0
    for change in changes.files:
        if change.binary:
            total += 1
            continue
        for line in change.diff().splitlines():
            if line.startswith(("+++", "---")):
                continue
            if line.startswith(("+", "-")):
                total += 1
    return total


def test_changes(changes: ChangeSet) -> tuple[list[str], list[str]]:
    """(test files changed, what each change does to the tests)."""
    touched: list[str] = []
    problems: list[str] = []
    for change in changes.files:
        paths = {change.path, change.old_path or change.path}
        if not any(is_test_path(p) for p in paths):
            continue
        touched.append(change.path)
        found = problems_in_test_change(change.path, change.old_text, change.new_text)
        problems.extend(found or [f"{change.path}: test file changed"])
    return touched, problems


def verify(
    settings: Any,
    root: Path,
    source: Path,
    changes: ChangeSet,
    base: Baseline,
    boxes: Boxes | None = None,
) -> Evidence:
    """The evidence of one finished candidate (runs the full suite in its run copy)."""
    touched, problems = test_changes(changes)
    ev = Evidence(
        targets=list(base.targets),
        touched_tests=touched,
        test_problems=problems,
        diff_lines=diff_lines(changes),
        files=changes.paths(),
    )
    if not changes:
        ev.suite = "not run: the candidate changed nothing"
        ev.still_red = list(base.targets)
        return ev
    suite = run_suite(settings, root, source, boxes)
    passed = set(suite.passed_ids)
    ev.still_red = [t for t in base.targets if t not in passed]
    ev.targets_green = suite.ran and not ev.still_red
    ev.suite_ok, ev.suite, ev.suite_ran, ev.failures = (
        suite.ok,
        suite.headline,
        suite.ran,
        suite.failures,
    )
    return ev
