"""Shared parts of the heavy-mode tests and bench: a real git repository with one failing
test, and a scripted fake K2 host giving four different candidates (routed by each
candidate's opening plan, so the order requests arrive in does not matter):

- c1 fixes `add` but breaks `sub` (target green, full suite red);
- c2 fixes `add` with a large rewrite (passes, big diff);
- c3 fixes `add` in one line (passes, smallest diff);
- c4 rewrites the test to expect the bug (suite green, but it touched a test).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_helpers import make_repo

from k2lsp.agent.heavy.diversity import opening_plan
from k2lsp.fake.script import Reply
from k2lsp.fake.server import FakeK2Server

if TYPE_CHECKING:
    from tests.lsp_fixtures import Editor

MODEL = "kimi-k2-thinking"
HOST_PYTEST = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {sys.executable} -m pytest -q -p no:cacheprovider"
IMAGE_PYTEST = "python -m pytest -q -p no:cacheprovider"
BUG = "def add(a, b):\n    return a - b\n"
FIX = "def add(a, b):\n    return a + b\n"
BIG_FIX = '''def add(a, b):
    """Return the sum of a and b.

    Both arguments must be numbers; anything else is a TypeError.
    """
    for name, value in (("a", a), ("b", b)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    total = a
    total += b
    result = total
    return result
'''
FILES = {
    "calc.py": '"""A tiny calculator."""\n\n\n' + BUG + "\n\ndef sub(a, b):\n    return a - b\n",
    "tests/test_calc.py": (
        "from calc import add, sub\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_sub():\n    assert sub(5, 3) == 2\n"
    ),
}
TASK = "add(2, 3) returns -1; make add return the sum."


def make_calc_repo(path: Path) -> Path:
    """The calculator repository, committed (test_add fails, test_sub passes)."""
    return make_repo(path, dict(FILES))


def _edit(old: str, new: str, path: str = "calc.py") -> tuple[str, dict[str, str]]:
    return ("edit_file", {"path": path, "old_text": old, "new_text": new})


def _finish(text: str, delay: float) -> list[Reply]:
    return [
        Reply(reasoning="Run the tests.", tool_calls=[("run_tests", {})], delay_s=delay),
        Reply(reasoning="That is it.", content=text, delay_s=delay),
    ]


def candidate_scripts(delay: float = 0.0) -> list[list[Reply]]:
    """The four candidates' replies, in candidate order."""
    breaks = [
        Reply(reasoning="Fix add.", tool_calls=[_edit(BUG, FIX)], delay_s=delay),
        Reply(
            reasoning="And sub looks odd too.",
            tool_calls=[
                _edit("def sub(a, b):\n    return a - b", "def sub(a, b):\n    return a + b")
            ],
            delay_s=delay,
        ),
        *_finish("Fixed add and sub.", delay),
    ]
    large = [
        Reply(reasoning="Rewrite add robustly.", tool_calls=[_edit(BUG, BIG_FIX)], delay_s=delay),
        *_finish("Rewrote add with validation.", delay),
    ]
    minimal = [
        Reply(reasoning="One character.", tool_calls=[_edit(BUG, FIX)], delay_s=delay),
        *_finish("add now returns a + b.", delay),
    ]
    sed = "sed -i 's/== 5/== -1/' tests/test_calc.py"
    edits_test = [
        Reply(
            reasoning="The test expects the wrong thing.",
            tool_calls=[("run_command", {"command": sed})],
            delay_s=delay,
        ),
        *_finish("Adjusted the test.", delay),
    ]
    return [breaks, large, minimal, edits_test]


def script_candidates(srv: FakeK2Server, scripts: list[list[Reply]]) -> None:
    """Route candidate i's requests (its opening plan is in them) to `scripts[i]`."""
    for i, replies in enumerate(scripts):
        srv.routes.add(opening_plan(i), *replies)


def heavy_settings(srv: FakeK2Server, tmp_path: Path, sandbox: str, **kw: Any) -> Any:
    """Settings pointing at `srv` with a real sandbox; state under tmp_path."""
    from conftest import TEST_KEY

    from k2lsp.config.settings import Settings

    base: dict[str, Any] = dict(
        provider="openai-compatible",
        base_url=srv.base_url,
        model=MODEL,
        api_key=TEST_KEY,
        sandbox=sandbox,
        state_dir=tmp_path / "state",
        test_command=IMAGE_PYTEST if sandbox == "docker" else HOST_PYTEST,
        allow_commands=["sed -i *"],
    )
    base.update(kw)
    return Settings(**base)


async def start_heavy_editor(
    tmp_path: Path, base_url: str, sandbox: str, env: dict[str, str | None] | None = None
) -> Editor:
    """The language server (heavy ×3 by default, host pytest) on the calculator repository at
    tmp_path/proj, talking to the fake host at `base_url`; its home under tmp_path/home."""
    from tests.lsp_fixtures import start_editor

    root = make_calc_repo(tmp_path / "proj")
    options = {"sandbox": sandbox, "testCommand": HOST_PYTEST, "heavyCandidates": 3}
    return await start_editor(root, base_url, tmp_path / "home", init_options=options, env=env)


async def run_heavy_task(
    editor: Editor, fake: FakeK2Server, timeout: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Candidates c1..c3 scripted on `fake`, then a heavy ×3 TASK on calc.py until it ends;
    (the command's reply, the run's finished info)."""
    script_candidates(fake, candidate_scripts()[:3])
    uri = editor.open("calc.py")
    started = await editor.command("k2lsp.task", {"task": TASK, "uri": uri, "heavy": 3})
    info = await editor.finished(started["runId"], timeout=timeout)
    return started, info
