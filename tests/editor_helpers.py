"""Shared pieces of the editor end-to-end tests: the calc project with a failing test and the
scripted K2 moves that fix it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from k2lsp.fake.script import ScriptItem
from k2lsp.fake.server import Reply

CALC = "def add(a, b):\n    return a - b\n"
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def found_or_skip(path: str | None, missing: str) -> str:
    """`path` of an editor the tests need; skip the test with `missing` when it was not found."""
    if path is None:
        pytest.skip(missing)
    return path


def make_calc_project(tmp_path: Path) -> Path:
    """A git repository with a failing test: add() subtracts."""
    repo = tmp_path / "proj"
    repo.mkdir()
    (repo / "calc.py").write_text(CALC)
    (repo / "test_calc.py").write_text(TEST_CALC)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    return repo


def fix_script() -> list[ScriptItem]:
    """K2's moves for "fix the failing test": read, edit, answer."""
    return [
        Reply(
            reasoning="The test expects add(2, 3) == 5. Let me read calc.py first.",
            tool_calls=[("read_file", {"path": "calc.py"})],
        ),
        Reply(
            reasoning="add subtracts its arguments; it must add them.",
            tool_calls=[
                (
                    "edit_file",
                    {"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"},
                )
            ],
        ),
        Reply(
            reasoning="The edit is in place.",
            content="Fixed add(): it subtracted instead of adding.",
        ),
    ]


TYPING_CALC = (
    '"""Small calculator."""\n\n\ndef add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n'
    "    return a * b\n"
)


def make_typing_project(tmp_path: Path) -> Path:
    """A git repository whose calc.py has room around the buggy line (lines 1, 5, 9 typed on)."""
    repo = tmp_path / "proj"
    repo.mkdir()
    (repo / "calc.py").write_text(TYPING_CALC)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    return repo


def judge_typing(tries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Classify each try of editors/nvim/tests/typing.lua; returns one verdict per try.

    A try is right when the buffer holds the user's typing and either the fix (delivery
    `applied`/`merged`) or no change of K2's at all (delivery `conflict`/`refused`). Anything
    else (typing lost, the fix on another line, success reported without the fix) is wrong.
    `offset_ms` is how long before the first applyEdit arrived the user typed (negative:
    after it).
    """
    original = TYPING_CALC.splitlines()
    fixed = [("    return a + b" if line == "    return a - b" else line) for line in original]
    out = []
    for t in tries:

        def typed(lines: list[str], t: dict[str, Any] = t) -> list[str]:
            lines = list(lines)
            lines[t["line"] - 1] += t["suffix"]
            return lines

        buffer, delivery = t.get("buffer"), t.get("delivery")
        if delivery in ("applied", "merged"):
            right = buffer == typed(fixed)
        elif delivery in ("conflict", "refused"):
            right = buffer == typed(original)
        else:
            right = False
        applies = t.get("apply_ms") or []
        offset = applies[0] - t["typed_ms"] if applies and t.get("typed_ms") else None
        out.append(
            {
                "index": t["index"],
                "mode": t["mode"],
                "line": t["line"],
                "delivery": delivery,
                "right": right and bool(t.get("finished")),
                "offset_ms": offset,
                "attempts": len(applies),
            }
        )
    return out
