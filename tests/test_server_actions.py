"""Code actions over LSP (diagnostics, selections, test functions of six frameworks) and the pure
helpers behind them (test detection, minimal line edits)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types

from k2lsp.fake.server import FakeK2Server, Reply
from k2lsp.server.edits import line_edits, split_lines
from k2lsp.testrun.testfuncs import enclosing_test, find_tests
from tests.lsp_fixtures import (
    Editor,
    apply_text_edits,
    code_action_params,
    make_project,
    start_editor,
    stop_editor,
)

pytestmark = pytest.mark.timeout(180)

SOURCES = {
    "tests/test_py.py": (
        "import pytest\n\n\ndef helper():\n    pass\n\n\n"
        "@pytest.mark.slow\ndef test_sum():\n    assert sum([1]) == 1\n\n\n"
        "class TestGroup:\n    def test_inner(self):\n        assert True\n"
    ),
    "tests/test_unit.py": (
        "import unittest\n\n\nclass MathTest(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(1 + 1, 2)\n"
    ),
    "web/math.test.js": (
        "describe('math', () => {\n  it('adds', () => {\n    expect(1 + 1).toBe(2)\n  })\n})\n"
    ),
    "web/math.test.ts": (
        "import { test, expect } from 'vitest'\n\ntest('subtracts', () => {\n"
        "  expect(2 - 1).toBe(1)\n})\n"
    ),
    "pkg/math_test.go": (
        'package pkg\n\nimport "testing"\n\nfunc TestAdd(t *testing.T) {\n'
        '\tif 1+1 != 2 {\n\t\tt.Fatal("bad")\n\t}\n}\n'
    ),
    "src/lib.rs": (
        "pub fn add(a: i32, b: i32) -> i32 { a + b }\n\n#[cfg(test)]\nmod tests {\n"
        "    use super::*;\n\n    #[test]\n    fn adds() {\n"
        "        assert_eq!(add(1, 1), 2);\n    }\n}\n"
    ),
}
# (file, 0-based line inside the test, expected test name, framework)
CASES = [
    ("tests/test_py.py", 9, "test_sum", "pytest"),
    ("tests/test_py.py", 14, "TestGroup.test_inner", "pytest"),
    ("tests/test_unit.py", 5, "MathTest.test_add", "unittest"),
    ("web/math.test.js", 2, "math > adds", "jest"),
    ("web/math.test.ts", 3, "subtracts", "vitest"),
    ("pkg/math_test.go", 5, "TestAdd", "go"),
    ("src/lib.rs", 8, "tests::adds", "cargo"),
]


@pytest.fixture(scope="module")
def fake() -> FakeK2Server:
    return FakeK2Server([], models=["kimi-k2-thinking"])


@pytest.fixture
async def editor(tmp_path: Path, fake: FakeK2Server) -> AsyncIterator[Editor]:
    root = make_project(tmp_path / "proj")
    for rel, text in SOURCES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    fake.start()
    ed = await start_editor(root, fake.base_url, tmp_path / "home")
    yield ed
    await stop_editor(ed)
    fake.stop()


async def _actions(editor: Editor, params: types.CodeActionParams) -> list[types.CodeAction]:
    result = await editor.client.text_document_code_action_async(params)
    assert result is not None and all(isinstance(a, types.CodeAction) for a in result)
    return [a for a in result if isinstance(a, types.CodeAction)]


async def test_diagnostic_offers_fix_with_its_message(editor: Editor, fake: FakeK2Server) -> None:
    uri = editor.open("calc.py")
    diag = types.Diagnostic(
        range=types.Range(
            start=types.Position(line=1, character=4), end=types.Position(line=1, character=16)
        ),
        message="add returns the difference\nmore text",
        source="mylint",
    )
    actions = await _actions(editor, code_action_params(uri, (1, 5), (1, 5), [diag]))
    assert [a.title for a in actions] == ["K2: Fix add returns the difference"]
    cmd = actions[0].command
    assert cmd is not None and cmd.command == "k2lsp.fixDiagnostic"
    arg = cmd.arguments[0]
    assert arg["uri"] == uri and arg["diagnostic"]["message"].startswith("add returns")
    assert actions[0].kind == types.CodeActionKind.QuickFix
    assert fake.requests == []  # computing actions never calls the model


async def test_selection_offers_explain_refactor_and_write_tests(editor: Editor) -> None:
    uri = editor.open("calc.py")
    actions = await _actions(editor, code_action_params(uri, (0, 0), (2, 0)))
    assert [a.title for a in actions] == ["K2: Explain", "K2: Refactor…", "K2: Write tests"]
    assert [a.command.command for a in actions if a.command] == [
        "k2lsp.explain",
        "k2lsp.refactor",
        "k2lsp.writeTests",
    ]
    assert actions[0].command is not None
    assert actions[0].command.arguments[0]["range"]["end"] == {"line": 2, "character": 0}
    only = await _actions(editor, code_action_params(uri, (0, 0), (2, 0), only=["refactor"]))
    assert [a.title for a in only] == ["K2: Refactor…"]


async def test_plain_cursor_outside_tests_offers_nothing(editor: Editor) -> None:
    uri = editor.open("calc.py")
    assert await _actions(editor, code_action_params(uri, (1, 2), (1, 2))) == []


@pytest.mark.parametrize(("rel", "line", "name", "framework"), CASES)
async def test_fix_failing_test_is_offered_inside_each_framework_test(
    editor: Editor, rel: str, line: int, name: str, framework: str
) -> None:
    uri = editor.open(rel)
    actions = await _actions(editor, code_action_params(uri, (line, 2), (line, 2)))
    assert [a.title for a in actions] == [f"K2: Fix failing test {name}"]
    assert actions[0].command is not None
    arg = actions[0].command.arguments[0]
    assert (arg["testName"], arg["framework"], actions[0].command.command) == (
        name,
        framework,
        "k2lsp.fixFailingTest",
    )


async def test_edited_buffer_is_what_test_detection_sees(editor: Editor) -> None:
    uri = editor.open("calc.py")
    editor.change(uri, editor.text("calc.py") + "\n\ndef test_new():\n    assert 1\n")
    actions = await _actions(editor, code_action_params(uri, (9, 4), (9, 4)))
    assert [a.title for a in actions] == ["K2: Fix failing test test_new"]


async def test_k2lsp_test_failure_diagnostic_offers_fix_failing_test(editor: Editor) -> None:
    uri = editor.open("tests/test_calc.py")
    diag = types.Diagnostic(
        range=types.Range(
            start=types.Position(line=4, character=0), end=types.Position(line=5, character=0)
        ),
        message="test_add failed: assert -1 == 5",
        source="k2lsp",
        data={"testId": "tests/test_calc.py::test_add", "message": "assert -1 == 5"},
    )
    actions = await _actions(editor, code_action_params(uri, (4, 0), (4, 0), [diag]))
    assert [a.title for a in actions] == ["K2: Fix failing test tests/test_calc.py::test_add"]
    assert actions[0].command is not None
    assert actions[0].command.arguments[0]["message"] == "assert -1 == 5"


@pytest.mark.parametrize(("rel", "line", "name", "framework"), CASES)
def test_find_tests_names_each_framework(rel: str, line: int, name: str, framework: str) -> None:
    found = enclosing_test(rel, SOURCES[rel], line)
    assert found is not None and (found.name, found.framework) == (name, framework)


@pytest.mark.parametrize(
    ("rel", "text"),
    [
        ("calc.py", "def helper():\n    return 1\n"),
        ("notes.txt", "def test_x(): pass\n"),
        ("pkg/math.go", 'package pkg\nimport "testing"\nfunc TestX(t *testing.T) {}\n'),
        ("src/a.rs", "#[derive(Debug)]\nstruct A;\nfn test_like() {}\n"),
    ],
)
def test_find_tests_ignores_non_tests(rel: str, text: str) -> None:
    assert find_tests(rel, text) == []


def test_find_tests_survives_broken_code() -> None:
    found = find_tests("broken_test.py", "def test_x(:\n    pass\n\ndef test_y():\n    pass\n")
    assert "test_y" in [t.name for t in found]


lines = st.lists(st.sampled_from(["a", "b", "", "x = 1", "é", "😀 emoji", "tail"]), max_size=12)
endings = st.sampled_from(["\n", "\r\n"])


@settings(max_examples=200, deadline=None)
@given(old=lines, new=lines, eol=endings, final_newline=st.booleans())
def test_line_edits_turn_old_into_new(
    old: list[str], new: list[str], eol: str, final_newline: bool
) -> None:
    a = eol.join(old) + (eol if final_newline and old else "")
    b = eol.join(new) + (eol if new else "")
    assert apply_text_edits(a, line_edits(a, b)) == b
    assert "".join(split_lines(a)) == a


def test_line_edits_touch_only_changed_lines() -> None:
    old = "".join(f"line {i}\n" for i in range(5000))
    new = old.replace("line 2500\n", "line 2500 changed\n")
    edits = line_edits(old, new)
    assert len(edits) == 1 and edits[0].range.start.line == 2500
    assert edits[0].new_text == "line 2500 changed\n"


async def test_fix_failing_test_action_runs(editor: Editor, fake: FakeK2Server) -> None:
    fake.add(Reply(reasoning="look", content="The test expects addition."))
    uri = editor.open("tests/test_calc.py")
    actions = await _actions(editor, code_action_params(uri, (4, 4), (4, 4)))
    assert actions[0].command is not None
    started = await editor.command(actions[0].command.command, actions[0].command.arguments[0])
    await editor.finished(started["runId"])
    prompt = "\n".join(str(m.get("content")) for m in fake.requests[0]["messages"])
    assert "Make the failing test test_add (pytest) in tests/test_calc.py pass" in prompt


@settings(max_examples=150, deadline=None)
@given(
    rel=st.sampled_from(sorted(SOURCES)),
    cut=st.floats(0, 1),
    length=st.integers(0, 40),
    insert=st.sampled_from(["", "\n\ndef test_added():\n    pass\n", "x", "é😀\n", "  }\n"]),
)
def test_incremental_detection_matches_a_fresh_parse(
    rel: str, cut: float, length: int, insert: str
) -> None:
    from k2lsp.testrun.testfuncs import detect

    old = SOURCES[rel] + "\n\ndef test_tail():\n    pass\n" if rel.endswith(".py") else SOURCES[rel]
    at = int(cut * len(old))
    new = old[:at] + insert + old[at + length :]
    _, tree, data = detect(rel, old)
    assert tree is not None
    assert detect(rel, new, (tree, data))[0] == find_tests(rel, new)


@pytest.fixture
def detections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The threads test detection ran on (every `_detect` call is recorded)."""
    import threading

    from k2lsp.server import actions

    threads: list[str] = []
    real = actions._detect

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(actions, "_detect", spy)
    return threads


async def test_test_detection_runs_once_off_the_event_loop_for_concurrent_requests(
    detections: list[str],
) -> None:
    import threading

    from k2lsp.server import actions

    threads = detections
    cache = actions.TestCache()
    text = "def test_a():\n    assert 1\n\n\ndef test_b():\n    assert 2\n"
    cache.warm("u", "test_m.py", 1, text, delay=0.0)
    await asyncio.gather(*(cache.ensure("u", "test_m.py", 1, text) for _ in range(3)))
    assert [t.name for t in cache.tests("u", "test_m.py", 1, text)] == ["test_a", "test_b"]
    assert len(threads) == 1 and threads[0] != threading.main_thread().name
    await cache.ensure("u", "test_m.py", 2, text.replace("test_b", "test_c"))
    assert [t.name for t in cache.entries["u"].tests] == ["test_a", "test_c"]
    assert len(threads) == 2


async def test_a_detection_finished_before_its_callback_ran_is_not_parsed_again(
    detections: list[str],
) -> None:
    """A code action that asks for a detection which has just finished (its done-callback
    not yet run) gets its result: the event loop never parses the file a second time (that
    double parse made every few first code actions twice as slow)."""
    from k2lsp.server import actions

    threads = detections
    cache = actions.TestCache()
    text = "def test_a():\n    assert 1\n"
    from k2lsp.testrun.testfuncs import detect

    entry = actions._Entry(1, *detect("test_m.py", text))
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    cache._running["u"] = (1, done)
    done.add_done_callback(lambda f: cache._finish("u", 1, f))
    done.set_result(entry)  # its callback is only scheduled: the loop has not run it yet
    await cache.ensure("u", "test_m.py", 1, text)
    assert [t.name for t in cache.tests("u", "test_m.py", 1, text)] == ["test_a"]
    assert threads == []  # neither a worker nor the event loop parsed it again
    assert "u" not in cache._running
