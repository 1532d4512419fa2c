"""Runner detection and output parsers (pure functions over real runner output samples)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from k2lsp.errors import UsageError
from k2lsp.testrun.detect import build_runner, detect_command, runner_name
from k2lsp.testrun.model import TestReport
from k2lsp.testrun.parsers import parse_cargo, parse_go_json, parse_junit, parse_summary

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1"
failures="2" skipped="1" tests="6"><testcase classname="tests.test_m" name="test_ok"
file="tests/test_m.py" line="1" time="0.001" /><testcase classname="tests.test_m" name="test_bad"
file="tests/test_m.py" line="4" time="0.001"><failure message="AssertionError: x should be three
assert 2 == 3">def test_bad():
        x = 2
&gt;       assert x == 3, "x should be three"
E       AssertionError: x should be three

tests/test_m.py:7: AssertionError</failure></testcase><testcase classname="tests.test_m.TestK"
name="test_m[a-1]" file="tests/test_m.py" line="10" time="0.001"><failure
message="assert [1] == [2]"
>self = &lt;x&gt;
&gt;       assert helper()
src/helper.py:3: in helper
    raise ValueError
tests/test_m.py:12: AssertionError</failure></testcase><testcase classname="tests.test_m"
name="test_skip" file="tests/test_m.py" line="14" time="0"><skipped type="pytest.skip"
message="no"/></testcase><testcase classname="tests.test_m" name="test_fixture"
file="tests/test_m.py" line="20" time="0"><error
message="failed on setup with &quot;RuntimeError: db&quot;">E RuntimeError: db
tests/conftest.py:5: RuntimeError</error></testcase><testcase classname="" name="tests.test_broken"
time="0"><error message="collection failure">ImportError while importing test module</error>
</testcase></testsuite></testsuites>"""


NPM_INIT_PACKAGE = json.dumps(
    {
        "scripts": {"test": 'echo "Error: no test specified" && exit 1'},
        "devDependencies": {"jest": "29"},
    }
)


def _report(name: str = "x") -> TestReport:
    return TestReport(name, "cmd")


def test_junit_gives_counts_ids_lines_and_messages(tmp_path: Path) -> None:
    report = _report("pytest")
    assert parse_junit(JUNIT, report, tmp_path)
    assert (report.passed, report.failed, report.errors, report.skipped) == (1, 2, 2, 1)
    by_id = {f.test_id: f for f in report.failures}
    bad = by_id["tests/test_m.py::test_bad"]
    assert (bad.path, bad.line) == ("tests/test_m.py", 7)
    assert "x should be three" in bad.message
    param = by_id["tests/test_m.py::TestK::test_m[a-1]"]
    assert (param.path, param.line) == ("tests/test_m.py", 12)  # the test's own frame
    fixture = by_id["tests/test_m.py::test_fixture"]
    assert fixture.kind == "error" and "RuntimeError" in fixture.message
    assert "tests.test_broken" in {f.test_id for f in report.failures}
    assert report.passed_ids == ["tests/test_m.py::test_ok"]
    assert report.parsed_from == "junit" and not report.ok


def test_junit_that_is_not_xml_is_rejected(tmp_path: Path) -> None:
    assert not parse_junit("<testsuites><oops", _report(), tmp_path)


def test_no_tests_is_never_success() -> None:
    report = TestReport("pytest", "pytest", exit_code=5)
    assert report.no_tests and not report.ok and report.status() == "no_tests"
    assert report.headline().startswith("0 tests ran (NOT a success)")
    zero_exit = TestReport("custom", "true", exit_code=0)
    assert not zero_exit.ok and zero_exit.status() == "no_tests"


def test_skipped_only_run_is_not_success() -> None:
    report = TestReport("pytest", "pytest", exit_code=0, skipped=3)
    assert not report.ok and report.no_tests


GO = [
    {"Action": "run", "Package": "example.com/m/calc", "Test": "TestAdd"},
    {
        "Action": "output",
        "Package": "example.com/m/calc",
        "Test": "TestAdd",
        "Output": "=== RUN   TestAdd\n",
    },
    {
        "Action": "output",
        "Package": "example.com/m/calc",
        "Test": "TestAdd",
        "Output": "    calc_test.go:9: Add(1, 2) = 4, want 3\n",
    },
    {"Action": "fail", "Package": "example.com/m/calc", "Test": "TestAdd", "Elapsed": 0},
    {"Action": "pass", "Package": "example.com/m/calc", "Test": "TestSub", "Elapsed": 0},
    {"Action": "skip", "Package": "example.com/m/calc", "Test": "TestSlow", "Elapsed": 0},
    {"Action": "fail", "Package": "example.com/m/calc", "Elapsed": 0.01},
    {
        "Action": "output",
        "Package": "example.com/m/broken",
        "Output": "broken.go:3:1: syntax error\n",
    },
    {"Action": "fail", "Package": "example.com/m/broken", "Elapsed": 0},
]


def test_go_json_gives_failures_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "calc").mkdir()
    (tmp_path / "calc" / "calc_test.go").write_text("package calc\n")
    report = _report("go")
    text = "\n".join(json.dumps(e) for e in GO) + "\nFAIL\n"
    assert parse_go_json(text, report, tmp_path)
    assert (report.passed, report.failed, report.errors, report.skipped) == (1, 1, 1, 1)
    add = report.failures[0]
    assert add.test_id == "example.com/m/calc/TestAdd"
    assert (add.path, add.line) == ("calc/calc_test.go", 9)
    assert "want 3" in add.message
    assert report.failures[1].kind == "error" and "syntax error" in report.failures[1].message


CARGO = """
running 3 tests
test tests::adds ... ok
test tests::subtracts ... FAILED
test tests::slow ... ignored

failures:

---- tests::subtracts stdout ----

thread 'tests::subtracts' panicked at src/lib.rs:17:9:
assertion `left == right` failed
  left: 1
 right: 2
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace

failures:
    tests::subtracts

test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s
"""

CARGO_OLD = """test it_works ... FAILED
---- it_works stdout ----
thread 'it_works' panicked at 'assertion failed: `(left == right)`', tests/basic.rs:4:5
"""

CARGO_COMPILE = """error[E0425]: cannot find value `y` in this scope
 --> src/lib.rs:3:5
  |
3 |     y
"""


def test_cargo_libtest_output_is_parsed(tmp_path: Path) -> None:
    report = _report("cargo")
    assert parse_cargo(CARGO, report, tmp_path)
    assert (report.passed, report.failed, report.skipped) == (1, 1, 1)
    fail = report.failures[0]
    assert (fail.test_id, fail.path, fail.line) == ("tests::subtracts", "src/lib.rs", 17)
    assert "left == right" in fail.message
    with_thread_id = _report("cargo")  # Rust >= 1.88 prints the thread id
    assert parse_cargo(CARGO.replace("s' panicked", "s' (57) panicked"), with_thread_id, tmp_path)
    assert with_thread_id.failures[0].line == 17
    old = _report("cargo")
    assert parse_cargo(CARGO_OLD, old, tmp_path)
    assert (old.failures[0].path, old.failures[0].line) == ("tests/basic.rs", 4)
    compile_error = _report("cargo")
    assert parse_cargo(CARGO_COMPILE, compile_error, tmp_path)
    assert compile_error.errors == 1 and compile_error.failures[0].line == 3


UNITTEST = """test_a (tests.test_u.T.test_a) ... ok
test_b (tests.test_u.T.test_b) ... FAIL

======================================================================
FAIL: test_b (tests.test_u.T.test_b)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/repo/tests/test_u.py", line 8, in test_b
    self.assertEqual(1, 2)
AssertionError: 1 != 2

----------------------------------------------------------------------
Ran 3 tests in 0.001s

FAILED (failures=1, skipped=1)
"""

JEST = """FAIL src/sum.test.js
  ● sum › adds numbers

    expect(received).toBe(expected) // Object.is equality

      at Object.toBe (src/sum.test.js:4:20)

Tests:       1 failed, 1 skipped, 2 passed, 4 total
"""

VITEST = """ FAIL  src/sum.test.ts > sum > adds
AssertionError: expected 3 to be 4
 ❯ src/sum.test.ts:5:17

 Test Files  1 failed (1)
      Tests  1 failed | 2 passed (3)
"""


@pytest.mark.parametrize(
    ("text", "counts", "failure"),
    [
        (UNITTEST, (1, 1, 0, 1), ("tests.test_u.T.test_b", "/repo/tests/test_u.py", 8)),
        (JEST, (2, 1, 0, 1), ("sum › adds numbers", "src/sum.test.js", 4)),
        (VITEST, (2, 1, 0, 0), ("src/sum.test.ts > sum > adds", "src/sum.test.ts", 5)),
        (
            "FAILED tests/t.py::test_x - assert 0\n= 1 failed, 3 passed, 2 skipped in 0.50s =\n",
            (3, 1, 0, 2),
            ("tests/t.py::test_x", "tests/t.py", None),
        ),
    ],
)
def test_summary_parsers(
    text: str,
    counts: tuple[int, int, int, int],
    failure: tuple[str, str, int | None],
    tmp_path: Path,
) -> None:
    report = _report()
    assert parse_summary(text, report, tmp_path)
    assert (report.passed, report.failed, report.errors, report.skipped) == counts
    first = report.failures[0]
    assert (first.test_id, first.path, first.line) == failure


def test_pytest_no_tests_ran_summary(tmp_path: Path) -> None:
    report = TestReport("pytest", "pytest", exit_code=5)
    assert parse_summary("\nno tests ran in 0.01s\n", report, tmp_path)
    assert report.no_tests


def test_unparseable_output_is_not_counted(tmp_path: Path) -> None:
    assert not parse_summary("make: Nothing to be done\n", _report(), tmp_path)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"pyproject.toml": "[tool.pytest.ini_options]\n", "x.py": ""}, "python3 -m pytest -q"),
        ({"tests/test_a.py": "import pytest\n"}, "python3 -m pytest -q"),
        (
            {"tests/test_a.py": "import unittest\nclass T(unittest.TestCase): pass\n"},
            "python3 -m unittest discover -v -s tests -t tests",
        ),
        (
            {"package.json": '{"scripts": {"test": "vitest run"}}', "pnpm-lock.yaml": ""},
            "vitest run",
        ),
        (
            {"package.json": '{"scripts": {"pretest": "tsc", "test": "jest"}}', "yarn.lock": ""},
            "jest",
        ),
        (
            {"package.json": '{"scripts": {"test": "make check || exit 1"}}', "yarn.lock": ""},
            "yarn test --ignore-scripts",
        ),
        ({"package.json": NPM_INIT_PACKAGE}, "jest --ci"),
        ({"go.mod": "module m\n"}, "go test ./..."),
        ({"Cargo.toml": "[package]\n"}, "cargo test --no-fail-fast"),
        ({"Makefile": "all:\n\ttrue\ntest: all\n\ttrue\n"}, "make test"),
        (
            {".venv/bin/python": "", ".venv/pyvenv.cfg": "home = /usr/bin\n", "conftest.py": ""},
            ".venv/bin/python -m pytest -q",
        ),
    ],
)
def test_runner_detection(files: dict[str, str], expected: str, tmp_path: Path) -> None:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert detect_command(tmp_path) == expected


def test_no_runner_detected_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("hi")
    with pytest.raises(UsageError, match=r"no test runner detected.*pass `command`"):
        detect_command(tmp_path)


def test_machine_output_flags_are_added(tmp_path: Path) -> None:
    py = build_runner(tmp_path, tmp_path / "scratch", "pytest -q", ["tests/test_a.py::test_x"])
    assert py.name == "pytest" and py.junit is not None
    assert "--junitxml=" in py.command and "junit_family=xunit1" in py.command
    assert py.command.endswith("tests/test_a.py::test_x")
    assert py.display == "pytest -q tests/test_a.py::test_x"
    go = build_runner(tmp_path, tmp_path, "go test ./...")
    assert go.command == "go test -json ./..."
    assert runner_name("npm test", tmp_path) == "npm"
    assert runner_name("cargo test", tmp_path) == "cargo"
    assert runner_name("./run-tests.sh", tmp_path) == "custom"
