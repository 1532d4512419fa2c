"""Honesty guards for test runs: no passing by changing the tests.

- `problems_in_test_change(path, old, new)` names what a change to a test file does: modifies or
  deletes a test file, adds skip/xfail/only markers, removes tests, removes or trivialises
  assertions.
- `review_run_copy(root)` applies that to every file changed in the run copy since its start
  (git, so edits made through `run_command` count too).
- `guard_edit(ctx, path, old, new)` is for editing tools: it raises ToolError unless the task
  allows changing tests (settings.allow_test_changes or ctx.state["allow_test_changes"]).
- `Evidence` records red→green evidence for a fix-failing-test run.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from k2lsp import gitcmd

_TEST_NAME = re.compile(
    r"(^|/)(test_[^/]*\.py|[^/]*_test\.py|conftest\.py|[^/]*_test\.go|[^/]*\.(test|spec)\.[cm]?[jt]sx?"
    r"|[^/]*Test\.java|[^/]*_spec\.rb)$"
)
_TEST_DIR = re.compile(r"(^|/)(tests?|__tests__|spec)/")
_TEST_CONFIG = re.compile(
    r"(^|/)(pytest\.ini|tox\.ini|setup\.cfg|jest\.config\.[cm]?[jt]s|"
    r"vitest\.config\.[cm]?[jt]s|\.mocharc\.\w+)$"
)

SKIP_MARKERS = re.compile(
    r"@pytest\.mark\.(skip|skipif|xfail)\b|pytest\.(skip|xfail|importorskip)\(|@unittest\.skip"
    r"|@unittest\.expectedFailure|\bself\.skipTest\(|\bt\.Skip(Now|f)?\(|#\[ignore\]"
    r"|\b(it|test|describe)\.(skip|todo|only)\b|\b(xit|xdescribe|xtest|fit|fdescribe)\("
    r"|--deselect\b|(^|\s)-k\s+['\"]?not\b|collect_ignore"
)
TEST_DEFS = re.compile(
    r"^\s*(async\s+)?def\s+test\w*\s*\(|^func\s+(Test|Benchmark|Fuzz)\w*\("
    r"|#\[(tokio::)?test\]|\b(it|test)\s*\(\s*['\"`]",
    re.M,
)
ASSERTIONS = re.compile(
    r"^\s*assert\b|\bself\.assert\w+\(|\bpytest\.raises\(|\bexpect\(|"
    r"\bt\.(Error|Errorf|Fatal|Fatalf|Fail|FailNow)\(|\bassert(_eq|_ne)?!\(",
    re.M,
)
TRIVIAL = re.compile(
    r"^\s*assert\s+(True|1|not\s+False)\s*(,.*)?$|\bor\s+True\b|"
    r"expect\((true|1)\)\.toBe\((true|1)\)|self\.assertTrue\(True\)|assert!\(true\)",
    re.M,
)


def is_test_path(path: str) -> bool:
    """Whether a workspace path is a test file or test configuration."""
    p = PurePosixPath(path).as_posix()
    return bool(
        _TEST_NAME.search(p) or (_TEST_DIR.search(p) and _is_code(p)) or _TEST_CONFIG.search(p)
    )


def _is_code(path: str) -> bool:
    return PurePosixPath(path).suffix in {
        ".py",
        ".go",
        ".rs",
        ".js",
        ".ts",
        ".jsx",
        ".tsx",
        ".mjs",
        ".cjs",
        ".java",
        ".rb",
        ".kt",
        ".c",
        ".cc",
        ".cpp",
        ".h",
    }


def problems_in_test_change(path: str, old: str | None, new: str | None) -> list[str]:
    """What a change to `path` does to the tests ([] when it is not a test file or harmless)."""
    if not is_test_path(path):
        return []
    if old is None:  # a new file: fine unless it only exists to skip things
        added = _count(SKIP_MARKERS, new or "")
        return [f"{path}: new test file adds {added} skip/xfail/only marker(s)"] if added else []
    if new is None:
        n = _count(TEST_DEFS, old)
        return [f"{path}: test file deleted ({n} test(s) removed)"]
    problems = []
    for label, pattern, grows_is_bad in (
        ("skip/xfail/only markers", SKIP_MARKERS, True),
        ("trivially true assertions", TRIVIAL, True),
        ("tests", TEST_DEFS, False),
        ("assertions", ASSERTIONS, False),
    ):
        before, after = _count(pattern, old), _count(pattern, new)
        if grows_is_bad and after > before:
            problems.append(f"{path}: adds {after - before} {label}")
        elif not grows_is_bad and after < before:
            problems.append(f"{path}: removes {before - after} {label} ({before} -> {after})")
    if not problems and old != new:
        problems.append(f"{path}: test file modified")
    return problems


def _count(pattern: re.Pattern[str], text: str) -> int:
    return len(pattern.findall(text))


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Through the one git runner: no inherited GIT_DIR/GIT_WORK_TREE, no hooks, no pager."""
    try:
        return gitcmd.run(root, *args, check=False)
    except gitcmd.GitError as exc:  # git missing or the folder gone: "not a git repo"
        return subprocess.CompletedProcess(["git", *args], 128, b"", str(exc).encode())


def changed_files(root: Path) -> list[tuple[str, str | None, str | None]] | None:
    """(path, old text, new text) for every file changed since HEAD; None when not a git repo."""
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    if status.returncode != 0:
        return None
    out = []
    entries = status.stdout.decode("utf-8", "replace").split("\0")
    skip_next = False
    for entry in entries:
        if skip_next or len(entry) < 4:
            skip_next = False
            continue
        code, path = entry[:2], entry[3:]
        if "R" in code or "C" in code:
            skip_next = True  # the next entry is the rename source
        old = None if code == "??" or "A" in code else _show(root, path)
        file = root / path
        new = file.read_text(encoding="utf-8", errors="replace") if file.is_file() else None
        out.append((path, old, new))
    return out


def _show(root: Path, path: str) -> str | None:
    proc = _git(root, "show", f"HEAD:{path}")
    return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else None


def review_run_copy(root: Path) -> list[str]:
    """Problems with test files changed in the run copy since its start."""
    changes = changed_files(root)
    if not changes:
        return []
    problems: list[str] = []
    for path, old, new in changes:
        problems.extend(problems_in_test_change(path, old, new))
    return problems


def tests_may_change(ctx: Any) -> bool:
    """Whether this run's task allows changing tests."""
    if ctx.state.get("allow_test_changes"):
        return True
    return bool(getattr(ctx.settings, "allow_test_changes", False))


def refusal(problems: list[str]) -> str:
    """The message the model sees when test changes are refused."""
    listed = "\n".join(f"  - {p}" for p in problems[:20])
    return (
        "Changing tests is not allowed in this task (the tests define success):\n"
        + listed
        + "\nRestore the test files (e.g. `git checkout -- <file>` via run_command, or edit them "
        "back) and fix the code under test instead."
    )


def guard_edit(ctx: Any, path: str, old: str | None, new: str | None) -> None:
    """Raise ToolError when an edit to a test file is not allowed (for editing tools)."""
    from k2lsp.tools.base import ToolError

    if tests_may_change(ctx):
        return
    problems = problems_in_test_change(path, old, new)
    if problems:
        raise ToolError(refusal(problems))


@dataclass
class Evidence:
    """Red→green evidence: a test seen failing, then seen passing, with the diff in between."""

    test_id: str
    red_message: str
    red_location: str
    red_diff: str
    green_diff: str = ""
    green: bool = False
    history: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def diff_now(root: Path, cap: int = 20_000) -> str:
    """The run copy's diff since HEAD (capped), '' when unavailable."""
    proc = _git(root, "diff", "HEAD", "--no-color", "--no-ext-diff")
    text = proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else ""
    return text if len(text) <= cap else text[:cap] + "\n[... diff capped ...]\n"


def record_evidence(state: dict[str, Any], root: Path, report: Any) -> list[Evidence]:
    """Update red→green evidence in `state["test_evidence"]`; return the tests that turned green."""
    book: dict[str, Evidence] = state.setdefault("test_evidence", {})
    turned: list[Evidence] = []
    diff: str | None = None
    for failure in report.failures:
        if failure.test_id not in book:
            diff = diff_now(root) if diff is None else diff
            book[failure.test_id] = Evidence(
                failure.test_id, failure.message, failure.location(), diff
            )
        book[failure.test_id].history.append("red")
    for test_id in report.passed_ids:
        ev = book.get(test_id)
        if ev is not None and not ev.green:
            diff = diff_now(root) if diff is None else diff
            ev.green, ev.green_diff = True, diff
            ev.history.append("green")
            turned.append(ev)
    return turned
