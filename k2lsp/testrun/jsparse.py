"""Parsers for JavaScript runners' text: TAP (tape, tap, ava, `node --test
--test-reporter=tap`) and mocha's spec reporter. Jest and vitest summaries are in parsers.py."""

from __future__ import annotations

import re
from pathlib import Path

from k2lsp.testrun.model import TestFailure, TestReport
from k2lsp.testrun.parsers import MESSAGE_CAP, rel_path

_TAP_LINE = re.compile(
    r"^(?P<ind>\s*)(?P<res>ok|not ok)\s+\d+(?:\s*-)?\s*(?P<desc>[^#\n]*?)\s*"
    r"(?:#\s*(?P<dir>SKIP|TODO)\S*.*)?$",
    re.M | re.I,
)
_TAP_SUMMARY = re.compile(
    r"^#\s*(?P<key>tests|pass|fail|skip|skipped|todo|cancelled)\s+(?P<n>\d+)\s*$", re.M
)
_JS_AT = re.compile(r"\(?(?P<path>(?:file://)?[^\s()]+\.(?:[cm]?[jt]sx?)):(?P<line>\d+):\d+\)?")


def _loc(text: str, root: Path) -> tuple[str, int | None]:
    for m in _JS_AT.finditer(text):
        path = m["path"].removeprefix("file://")
        if "node_modules" in path or path.startswith("node:"):
            continue
        return rel_path(path, root), int(m["line"])
    return "", None


def parse_tap(text: str, report: TestReport, root: Path) -> bool:
    """Fill `report` from TAP; False when the text holds no TAP result line."""
    lines = list(_TAP_LINE.finditer(text))
    if not lines:
        return False
    summary = {m["key"]: int(m["n"]) for m in _TAP_SUMMARY.finditer(text)}
    top = min(len(m["ind"]) for m in lines)
    for i, m in enumerate(lines):
        directive = (m["dir"] or "").upper()
        if m["res"].lower() == "ok" or directive:
            continue
        nested_parent = i + 1 < len(lines) and len(lines[i + 1]["ind"]) > len(m["ind"])
        if nested_parent and len(m["ind"]) == top and "tests" in summary:
            continue  # node's suite line: its failing leaves are reported themselves
        end = lines[i + 1].start() if i + 1 < len(lines) else len(text)
        block = text[m.end() : end]
        path, line = _loc(block, root)
        message = _tap_message(block)
        report.failures.append(TestFailure(m["desc"] or f"test {i + 1}", path, line, message))
    if "pass" in summary or "fail" in summary:
        report.passed += summary.get("pass", 0)
        report.failed += summary.get("fail", 0)
        report.skipped += summary.get("skip", summary.get("skipped", 0)) + summary.get("todo", 0)
        report.errors += summary.get("cancelled", 0)
        if "pass" not in summary and "tests" in summary:
            report.passed += max(summary["tests"] - report.failed - report.skipped, 0)
    else:
        for m in lines:
            directive = (m["dir"] or "").upper()
            if directive:
                report.skipped += 1
            elif m["res"].lower() == "ok":
                report.passed += 1
            else:
                report.failed += 1
    report.parsed_from = "tap"
    return True


def _tap_message(block: str) -> str:
    fields = {}
    for key in ("message", "operator", "expected", "actual", "error"):
        m = re.search(rf"^\s*{key}:\s*(?P<v>.+)$", block, re.M)
        if m:
            fields[key] = m["v"].strip().strip("'\"|>-").strip()
    text = "; ".join(f"{k}: {v}" for k, v in fields.items() if v)
    return text[:MESSAGE_CAP]


_MOCHA_COUNT = re.compile(r"^\s+(?P<n>\d+) (?P<what>passing|failing|pending)\b", re.M)
_MOCHA_FAIL = re.compile(r"^\s{2}(?P<n>\d+)\) (?P<title>.+)$", re.M)


def parse_mocha(text: str, report: TestReport, root: Path) -> bool:
    """Fill `report` from mocha's spec reporter; False when there is no `N passing` line."""
    counts = {m["what"]: int(m["n"]) for m in _MOCHA_COUNT.finditer(text)}
    if "passing" not in counts and "failing" not in counts:
        return False
    report.passed += counts.get("passing", 0)
    report.failed += counts.get("failing", 0)
    report.skipped += counts.get("pending", 0)
    tail = text[list(_MOCHA_COUNT.finditer(text))[-1].end() :]
    fails = list(_MOCHA_FAIL.finditer(tail))
    for i, m in enumerate(fails):
        block = tail[m.end() : fails[i + 1].start() if i + 1 < len(fails) else len(tail)]
        words = [ln.strip() for ln in block.splitlines() if ln.strip()]
        title_rest = [w for w in words if not w.startswith(("at ", "Error", "Assertion"))][:1]
        message = next((w for w in words if "Error" in w), words[0] if words else "")
        path, line = _loc(block, root)
        title = m["title"].strip() + (" " + title_rest[0].rstrip(":") if title_rest else "")
        report.failures.append(TestFailure(title, path, line, message[:MESSAGE_CAP]))
    report.parsed_from = "mocha"
    return True
