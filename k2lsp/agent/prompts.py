"""System prompts per run mode and the first user message.

The system prompt depends only on the mode and the offered tool names, never on time, paths
or the task, so it is byte-stable across the steps of a run (the host's prefix cache hits).
"""

from __future__ import annotations

from typing import Any

_CORE = """\
You are k2lsp, a careful software engineer working inside a code repository through tools.
The repository is a private copy made for this run: read and change it only through the
tools. Paths are relative to the repository root.

How to work:
1. Explore before you act: list_files, search, repo_map, find_symbol and read_file show
   the code. Read the relevant code before changing it.
2. Make the smallest change that solves the task. Prefer replace_symbol / insert_code /
   edit_file for focused edits (edit_file needs old_text that occurs exactly once) and
   apply_patch for edits spanning several files. Keep the existing style.
3. Check your work: run_tests runs the tests in a sandbox and reports the failures. Run
   them after changing code when the project has tests.
4. When a tool returns an error, read it and adjust; do not repeat the same call with the
   same arguments.
5. When you are done, stop calling tools and reply with a short summary: what you changed,
   why, and the test status. Do not paste whole files into the summary."""

_READ_ONLY = """\
This is a read-only request: you cannot change files. Use the tools to find the facts,
then answer clearly and concisely, citing paths and line numbers (path:line)."""

_MODE_GOALS: dict[str, str] = {
    "task": "Your goal: complete the user's task in the repository.",
    "ask": "Your goal: answer the user's question about this code base.",
    "explain": "Your goal: explain the given code: what it does, how, and why it matters.",
    "fix_diagnostic": (
        "Your goal: fix the cause of the given diagnostic (compiler, linter or type checker "
        "message) with a minimal change, without silencing it unless that is the right fix."
    ),
    "refactor": (
        "Your goal: refactor the given code as asked while keeping its behaviour; keep every "
        "caller working and the tests green."
    ),
    "write_tests": (
        "Your goal: write focused tests for the given code in the project's existing test "
        "style and location, then run them and make sure they pass."
    ),
    "fix_failing_test": (
        "Your goal: make the failing test pass by fixing the code under test. Change the "
        "test itself only if it is clearly wrong, and say so in your summary."
    ),
}


def system_prompt(mode: str, read_only: bool = False) -> str:
    """The system prompt of `mode` (unknown modes behave like `task`)."""
    goal = _MODE_GOALS.get(mode, _MODE_GOALS["task"])
    parts = [_CORE, goal]
    if read_only:
        parts.append(_READ_ONLY)
    return "\n\n".join(parts) + "\n"


def task_message(
    task: str,
    *,
    mode: str = "task",
    context: str = "",
    focus_paths: list[str] | None = None,
    repo_name: str = "",
) -> str:
    """The first user message: the task, then any context the front-end supplied."""
    parts = [f"Task: {task.strip()}"]
    if repo_name:
        parts.append(f"Repository: {repo_name}")
    if focus_paths:
        parts.append("Files this is about: " + ", ".join(focus_paths))
    if context.strip():
        parts.append("Context:\n" + context.strip())
    return "\n\n".join(parts)


def initial_messages(
    task: str,
    *,
    mode: str = "task",
    read_only: bool = False,
    context: str = "",
    focus_paths: list[str] | None = None,
    repo_name: str = "",
) -> list[dict[str, Any]]:
    """System prompt plus the task message: the start of every run's history."""
    return [
        {"role": "system", "content": system_prompt(mode, read_only)},
        {
            "role": "user",
            "content": task_message(
                task, mode=mode, context=context, focus_paths=focus_paths, repo_name=repo_name
            ),
        },
    ]


# ---- the tasks an editor command asks for (the server only fills in the document) -----------
DEFAULT_REFACTOR = "improve its structure and naming without changing its behaviour"


def fix_failing_test_task(name: str, framework: str, rel: str) -> str:
    """The task of "K2: Fix failing test"."""
    return (
        f"Make the failing test {name}{f' ({framework})' if framework else ''} in "
        f"{rel} pass. Run it first to see the failure; fix the code under test, "
        "not the test, unless the test itself is wrong; run it again to confirm."
    )


def explain_task(where: str) -> str:
    """The task of "K2: Explain" (`where`: `a.py` or `a.py lines 3-9`)."""
    return f"Explain the code in {where}: what it does and why."


def refactor_task(where: str, instruction: str = "") -> str:
    """The task of "K2: Refactor…"."""
    return f"Refactor the code in {where}: {instruction.strip() or DEFAULT_REFACTOR}."


def write_tests_task(where: str) -> str:
    """The task of "K2: Write tests"."""
    return (
        f"Write tests for the code in {where}, next to the project's existing "
        "tests and in their style, then run them."
    )


def fix_diagnostic_task(rel: str, line: int, source: str, message: str) -> str:
    """The task of "K2: Fix …" on a diagnostic (`source` e.g. "pyright reportX", or "")."""
    return f"Fix this problem in {rel} at line {line}{f' ({source})' if source else ''}: {message}"
