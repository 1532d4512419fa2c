"""The structured result of a test run (what run_tests returns, emits and stores)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TestFailure:
    """One failing (or erroring) test."""

    test_id: str
    path: str = ""  # workspace-relative posix path, "" when unknown
    line: int | None = None  # 1-based
    message: str = ""
    kind: str = "failed"  # failed | error

    def location(self) -> str:
        """`path:line` (or what is known of it)."""
        if not self.path:
            return ""
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass
class TestReport:
    """Counts and failures of one run; `parsed_from` names the source of the counts."""

    runner: str
    command: str
    exit_code: int = 0
    duration: float = 0.0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[TestFailure] = field(default_factory=list)
    parsed_from: str = "none"  # junit | go-json | libtest | summary | exit-code | none
    timed_out: bool = False
    limits_hit: list[str] = field(default_factory=list)
    output_tail: str = ""
    passed_ids: list[str] = field(default_factory=list)
    diagnosis: str = ""  # what happened when no counts could be read (testrun.diagnose)
    notes: list[str] = field(default_factory=list)  # fallbacks tried, environment warnings

    __test__ = False  # not a pytest class

    @property
    def total(self) -> int:
        """Tests that ran (passed + failed + errors; skipped tests did not run)."""
        return self.passed + self.failed + self.errors

    @property
    def no_tests(self) -> bool:
        """True when nothing ran (never a success)."""
        return self.total == 0 and not self.timed_out

    @property
    def ok(self) -> bool:
        """Success: at least one test ran, none failed, and the runner exited 0."""
        return (
            self.exit_code == 0
            and self.total > 0
            and not (self.failed or self.errors)
            and not self.timed_out
        )

    def status(self) -> str:
        """passed | failed | no_tests | timed_out | error."""
        if self.timed_out:
            return "timed_out"
        if self.ok:
            return "passed"
        if self.failed or self.errors:
            return "failed"
        if self.no_tests:
            return "no_tests"
        return "error"

    def headline(self) -> str:
        """One line for humans and the model."""
        if self.timed_out:
            return f"TIMED OUT: the test command was killed ({self.command})"
        counts = (
            f"{self.passed} passed, {self.failed} failed, {self.errors} errors, "
            f"{self.skipped} skipped"
        )
        if self.no_tests:
            what = self.diagnosis or f"exit code {self.exit_code}"
            return f"0 tests ran (NOT a success): {what}"
        if self.ok:
            return f"PASSED: {counts}"
        if not (self.failed or self.errors):
            return f"FAILED (exit code {self.exit_code}): {counts}"
        return f"FAILED: {counts}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for ctx.state, events and the language server)."""
        out = asdict(self)
        out.update(total=self.total, ok=self.ok, status=self.status(), no_tests=self.no_tests)
        return out
