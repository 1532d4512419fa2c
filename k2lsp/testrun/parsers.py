"""Parsers from runner output to a TestReport: pytest JUnit XML, `go test -json`, cargo libtest
text, and the summary lines of pytest, unittest, jest and vitest as a fallback."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from k2lsp.testrun.model import TestFailure, TestReport

MESSAGE_CAP = 800


def _short(text: str, cap: int = MESSAGE_CAP) -> str:
    text = text.strip()
    return text if len(text) <= cap else text[:cap] + " [...]"


def rel_path(path: str, root: Path) -> str:
    """`path` relative to `root` in posix form (absolute paths outside root kept as given)."""
    if not path:
        return ""
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return path
    return PurePosixPath(path.replace("\\", "/")).as_posix()


# ---------- pytest JUnit XML (junit_family=xunit1: file and line attributes) ----------

_LOC = re.compile(r"^(?P<path>[^\s:][^:\n]*\.py):(?P<line>\d+): ", re.M)


def parse_junit(xml_text: str, report: TestReport, root: Path) -> bool:
    """Fill `report` from pytest JUnit XML; False when the XML is unusable."""
    try:
        tree = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError:
        return False
    for case in tree.iter("testcase"):
        file = rel_path(case.get("file", ""), root)
        test_id = _pytest_id(file, case.get("classname", ""), case.get("name", ""))
        problem = case.find("failure")
        kind = "failed"
        if problem is None:
            problem, kind = case.find("error"), "error"
        if problem is None:
            if case.find("skipped") is not None:
                report.skipped += 1
            else:
                report.passed += 1
                report.passed_ids.append(test_id)
            continue
        setattr(
            report,
            "failed" if kind == "failed" else "errors",
            getattr(report, "failed" if kind == "failed" else "errors") + 1,
        )
        body = problem.text or ""
        path, line = _failure_location(body, file, root)
        if line is None and case.get("line", "").isdigit():
            line = int(case.get("line", "0")) + 1
        lines = body.strip().splitlines()
        message = problem.get("message") or (lines[-1] if lines else "")
        report.failures.append(TestFailure(test_id, path or file, line, _short(message), kind))
    report.parsed_from = "junit"
    return True


def _pytest_id(file: str, classname: str, name: str) -> str:
    """Rebuild the pytest node id from xunit1 attributes."""
    if not file:
        return f"{classname}::{name}" if classname else name
    module = file[:-3].replace("/", ".") if file.endswith(".py") else file
    rest = classname[len(module) :].lstrip(".") if classname.startswith(module) else ""
    parts = [file, *([p for p in rest.split(".") if p]), name]
    return "::".join(parts)


def _failure_location(body: str, file: str, root: Path) -> tuple[str, int | None]:
    """The deepest `path:line:` in a pytest traceback inside the test's own file (or any)."""
    hits = [(rel_path(m["path"], root), int(m["line"])) for m in _LOC.finditer(body)]
    own = [h for h in hits if h[0] == file]
    if own:
        return own[-1]
    return hits[-1] if hits else ("", None)


# ---------- go test -json ----------

_GO_LOC = re.compile(r"^\s+(?P<file>[\w./-]+_test\.go):(?P<line>\d+): (?P<msg>.*)$")


def parse_go_json(text: str, report: TestReport, root: Path) -> bool:
    """Fill `report` from `go test -json` lines; False when there are none."""
    outputs: dict[tuple[str, str], list[str]] = {}
    seen = False
    for raw in text.splitlines():
        if not raw.startswith("{"):
            continue
        try:
            ev = json.loads(raw)
        except json.JSONDecodeError:
            continue
        seen = True
        pkg, test, action = ev.get("Package", ""), ev.get("Test"), ev.get("Action")
        if action == "output":
            outputs.setdefault((pkg, test or ""), []).append(ev.get("Output", ""))
        elif test and action == "pass":
            report.passed += 1
            report.passed_ids.append(f"{pkg}/{test}" if pkg else test)
        elif test and action == "skip":
            report.skipped += 1
        elif action == "fail":
            lines = outputs.get((pkg, test or ""), [])
            if test:
                report.failed += 1
                report.failures.append(_go_failure(pkg, test, lines, root))
            elif not any(f.test_id.startswith(f"{pkg}/") for f in report.failures):
                report.errors += 1  # package failed without a failing test: build error
                report.failures.append(TestFailure(pkg, "", None, _short("".join(lines)), "error"))
    if seen:
        report.parsed_from = "go-json"
    return seen


def _go_failure(pkg: str, test: str, lines: list[str], root: Path) -> TestFailure:
    path, line, msgs = "", None, []
    for out in lines:
        m = _GO_LOC.match(out.rstrip("\n"))
        if m:
            if not path:
                path, line = _find_file(m["file"], root), int(m["line"])
            msgs.append(m["msg"])
    message = "\n".join(msgs) or "".join(lines[-5:])
    return TestFailure(f"{pkg}/{test}" if pkg else test, path, line, _short(message))


def _find_file(name: str, root: Path) -> str:
    """Workspace path of a file named in runner output by its base name (unique match only)."""
    if "/" in name and (root / name).exists():
        return name
    matches = [p for p in root.rglob(Path(name).name) if ".git" not in p.parts][:2]
    return matches[0].relative_to(root).as_posix() if len(matches) == 1 else name


# ---------- cargo test (libtest text) ----------

_CARGO_TEST = re.compile(r"^test (?P<name>\S+) \.\.\. (?P<res>ok|FAILED|ignored)", re.M)
_CARGO_PANIC = re.compile(
    r"thread '(?P<name>[^']+)'(?: \(\d+\))? panicked at "
    r"(?:(?P<loc>[^\s:]+:\d+:\d+):\n(?P<msg>(?:.+\n?){1,4})"
    r"|'(?P<oldmsg>.*?)', (?P<oldloc>[^\s:]+:\d+:\d+))"
)
_CARGO_ERR = re.compile(
    r"^error(?:\[E\d+\])?: (?P<msg>.+)\n\s*--> (?P<path>[^:]+):(?P<line>\d+)", re.M
)


def parse_cargo(text: str, report: TestReport, root: Path) -> bool:
    """Fill `report` from `cargo test` output; False when no test line or compile error is found."""
    panics = {m["name"]: m for m in _CARGO_PANIC.finditer(text)}
    found = False
    for m in _CARGO_TEST.finditer(text):
        found = True
        name, res = m["name"], m["res"]
        if res == "ok":
            report.passed += 1
            report.passed_ids.append(name)
        elif res == "ignored":
            report.skipped += 1
        else:
            report.failed += 1
            p = panics.get(name)
            loc = (p["loc"] or p["oldloc"]) if p else ""
            path, line = (loc.split(":")[0], int(loc.split(":")[1])) if loc else ("", None)
            msg = (p["msg"] or p["oldmsg"] or "") if p else ""
            report.failures.append(TestFailure(name, rel_path(path, root), line, _short(msg)))
    for m in _CARGO_ERR.finditer(text):
        found = True
        report.errors += 1
        report.failures.append(
            TestFailure(
                "compile", rel_path(m["path"], root), int(m["line"]), _short(m["msg"]), "error"
            )
        )
    if found:
        report.parsed_from = "libtest"
    return found


# ---------- summary lines (pytest text, unittest, jest, vitest) ----------

_PYTEST_SUMMARY = re.compile(r"^=*\s*(?P<body>(?:\d+ \w+(?:, )?)+) in [\d.]+s", re.M)
_PYTEST_FAILED = re.compile(
    r"^(?P<kind>FAILED|ERROR) (?P<id>\S+?)(?:::\S+)*(?: - (?P<msg>.*))?$", re.M
)
_UNITTEST_RAN = re.compile(r"^Ran (?P<n>\d+) tests? in", re.M)
_UNITTEST_END = re.compile(r"^(?P<st>OK|FAILED)(?: \((?P<body>[^)]*)\))?\s*$", re.M)
_UNITTEST_FAIL = re.compile(
    r"^(?P<kind>FAIL|ERROR): (?P<name>\S+) \((?P<cls>[^)]+)\)\n-+\n"
    r"(?P<tb>.*?)(?=^=+$|^-+\nRan |\Z)",
    re.M | re.S,
)
_JEST = re.compile(r"^Tests:\s+(?P<body>.+?), (?P<total>\d+) total", re.M)
_VITEST = re.compile(r"^\s*Tests\s+(?P<body>.+?)\s+\((?P<total>\d+)\)", re.M)
_COUNT = re.compile(
    r"(?P<n>\d+) (?P<what>passed|failed|errors?|skipped|xfailed|xpassed|"
    r"deselected|todo|pending)"
)


def _apply_counts(body: str, report: TestReport) -> None:
    for m in _COUNT.finditer(body):
        n, what = int(m["n"]), m["what"]
        if what in ("passed", "xpassed"):
            report.passed += n
        elif what == "failed":
            report.failed += n
        elif what.startswith("error"):
            report.errors += n
        elif what in ("skipped", "xfailed", "todo", "pending"):
            report.skipped += n


def parse_summary(text: str, report: TestReport, root: Path) -> bool:
    """Counts (and what failures can be read) from human summary lines; False when none."""
    for parser in (_pytest_text, _unittest_text, _jest_text):
        if parser(text, report, root):
            report.parsed_from = "summary"
            return True
    return False


def _pytest_text(text: str, report: TestReport, root: Path) -> bool:
    summaries = _PYTEST_SUMMARY.findall(text) if "no tests ran" not in text else []
    if not summaries and not re.search(r"^=*\s*no tests ran", text, re.M):
        return False
    if summaries:
        _apply_counts(summaries[-1], report)
    for m in _PYTEST_FAILED.finditer(text):
        test_id = m.group(0).split(" ", 1)[1].split(" - ")[0]
        path = test_id.split("::")[0]
        report.failures.append(
            TestFailure(
                test_id,
                path,
                None,
                _short(m["msg"] or ""),
                "failed" if m["kind"] == "FAILED" else "error",
            )
        )
    return True


def _unittest_text(text: str, report: TestReport, root: Path) -> bool:
    ran = _UNITTEST_RAN.findall(text)
    end = _UNITTEST_END.findall(text)
    if not ran:
        return False
    total = int(ran[-1])
    counts = {"failures": 0, "errors": 0, "skipped": 0, "expected failures": 0}
    for part in (end[-1][1] if end else "").split(","):
        key, _, value = part.strip().partition("=")
        if value.isdigit():
            counts[key] = int(value)
    report.failed += counts["failures"]
    report.errors += counts["errors"]
    report.skipped += counts["skipped"] + counts["expected failures"]
    report.passed += max(total - report.failed - report.errors - report.skipped, 0)
    for m in _UNITTEST_FAIL.finditer(text):
        frames = re.findall(r'File "(?P<f>[^"]+)", line (?P<l>\d+)', m["tb"])
        path, line = (rel_path(frames[-1][0], root), int(frames[-1][1])) if frames else ("", None)
        last = [ln for ln in m["tb"].strip().splitlines() if ln.strip()][-1:]
        cls = m["cls"] if m["cls"].endswith(m["name"]) else f"{m['cls']}.{m['name']}"
        report.failures.append(
            TestFailure(
                cls,
                path,
                line,
                _short(last[0] if last else ""),
                "failed" if m["kind"] == "FAIL" else "error",
            )
        )
    return True


_JS_FAIL = re.compile(r"^\s*(?:●|FAIL|×|✕)\s+(?P<name>.+?)\s*$", re.M)
_JS_LOC = re.compile(r"(?P<path>[\w./@-]+\.(?:[cm]?[jt]sx?)):(?P<line>\d+):\d+")


def _jest_text(text: str, report: TestReport, root: Path) -> bool:
    m = _JEST.search(text) or _VITEST.search(text)
    if m is None:
        return False
    _apply_counts(m["body"].replace("|", ","), report)
    for fm in _JS_FAIL.finditer(text):
        name = fm["name"]
        if name.endswith((".js", ".ts", ".jsx", ".tsx", ".mjs", ".cjs")):
            continue  # a file header, not a test
        after = text[fm.end() : fm.end() + 3000]
        loc = next((lm for lm in _JS_LOC.finditer(after) if "node_modules" not in lm["path"]), None)
        msg = next((ln.strip() for ln in after.splitlines() if ln.strip()), "")
        report.failures.append(
            TestFailure(
                name,
                rel_path(loc["path"], root) if loc else "",
                int(loc["line"]) if loc else None,
                _short(msg),
            )
        )
    return True
