"""The syntax gate every editing tool passes: an edit may not add parse errors to a file.

A file that was already broken may still be edited as long as it gets no worse. Files no
grammar covers pass unchecked.
"""

from __future__ import annotations

from collections import Counter

from k2lsp.code.languages import language_for
from k2lsp.code.parse import SyntaxProblem, line_text, parse, syntax_problems
from k2lsp.tools.base import ToolError

_SNIPPET_CHARS = 120


def problems_of(lang: str, text: str) -> tuple[bytes, list[SyntaxProblem]]:
    """Encoded text and its syntax problems."""
    data = text.encode("utf-8", "surrogatepass")
    return data, syntax_problems(parse(lang, data), data)


def check_edit(rel_path: str, old_text: str | None, new_text: str) -> None:
    """Raise ToolError if `new_text` has more ERROR/MISSING nodes than `old_text` (None: new)."""
    lang = language_for(rel_path)
    if lang is None:
        return
    new_data, new_problems = problems_of(lang, new_text)
    if not new_problems:
        return
    old_data, old_problems = (b"", []) if old_text is None else problems_of(lang, old_text)
    if len(new_problems) <= len(old_problems):
        return
    first = _first_new(new_problems, new_data, old_problems, old_data)
    raise ToolError(refusal_message(rel_path, first, new_data))


def refusal_message(rel_path: str, problem: SyntaxProblem, data: bytes) -> str:
    """The refusal text: where the parse breaks, a snippet of that line, and what to do."""
    snippet = line_text(data, problem.line).strip()
    if len(snippet) > _SNIPPET_CHARS:
        snippet = snippet[: _SNIPPET_CHARS - 3] + "..."
    return (
        f"edit refused: it breaks the parse of {rel_path} at line {problem.line}, "
        f"column {problem.column}: `{snippet}` ({problem.describe()}); nothing was written. "
        "Fix the syntax of your code and retry."
    )


def _signature(problem: SyntaxProblem, data: bytes) -> tuple[str, str]:
    return problem.missing, line_text(data, problem.line).strip()


def _first_new(
    new: list[SyntaxProblem], new_data: bytes, old: list[SyntaxProblem], old_data: bytes
) -> SyntaxProblem:
    """The first problem of `new` that `old` did not have (matched by kind and line text)."""
    remaining = Counter(_signature(p, old_data) for p in old)
    for problem in new:
        sig = _signature(problem, new_data)
        if remaining[sig] > 0:
            remaining[sig] -= 1
            continue
        return problem
    return new[0]
