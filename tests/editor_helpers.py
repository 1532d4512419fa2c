"""Shared pieces of the editor end-to-end tests: the calc project with a failing test and the
scripted K2 moves that fix it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from k2lsp.model.fake_script import ScriptItem
from k2lsp.model.fake_server import Reply

CALC = "def add(a, b):\n    return a - b\n"
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


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
