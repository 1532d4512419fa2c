"""The syntax gate every editing tool passes: an edit may not make a file unacceptable.

"Acceptable" is decided by the language's own checker where one is at hand: for Python the
running interpreter's `compile()` (which catches what tree-sitter forgives: bad dedents,
tab/space mixes, Python 2 `print "x"`, `return` outside a function, null bytes); for every
grammar, tree-sitter's ERROR and MISSING nodes. A file that was already broken may still be
edited (and fixed) as long as it gets no worse. Files no grammar covers pass unchecked.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from dataclasses import dataclass

from k2lsp.code.languages import language_for
from k2lsp.code.parse import SyntaxProblem, line_text, parse_cached, syntax_problems
from k2lsp.errors import ToolError

_SNIPPET_CHARS = 120
_PY = f"Python {sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class CompileFailure:
    """Why the interpreter refuses a Python text: exception name, message, 1-based line."""

    kind: str
    message: str
    line: int


def problems_of(lang: str, text: str) -> tuple[bytes, list[SyntaxProblem]]:
    """Encoded text and its syntax problems (from the cached tree when the text was parsed
    before, e.g. by the symbol lookup of the same edit)."""
    data = text.encode("utf-8", "surrogatepass")
    return data, syntax_problems(parse_cached(lang, data), data)


def python_failure(text: str, path: str) -> CompileFailure | None:
    """Why `compile()` of `text` fails, or None when it compiles (or cannot be judged)."""
    if text.startswith("\ufeff"):  # a UTF-8 BOM is fine in a file, not in a str to compile()
        text = text[1:]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning (bad escapes) is not a refusal
            compile(text, path, "exec", dont_inherit=True)
    except SyntaxError as exc:  # includes IndentationError and TabError
        line = exc.lineno or _null_line(text)
        return CompileFailure(type(exc).__name__, exc.msg or str(exc), line)
    except ValueError as exc:  # null bytes (older 3.11 releases)
        return CompileFailure("SyntaxError", str(exc), _null_line(text))
    except UnicodeError:  # lone surrogates cannot be source code
        return CompileFailure("SyntaxError", "the text is not valid Unicode (lone surrogate)", 1)
    except (RecursionError, MemoryError):
        return None  # too deep for this interpreter to judge: leave it to tree-sitter
    return None


def _null_line(text: str) -> int:
    """The 1-based line of the first null character (1 when there is none)."""
    return text.count("\n", 0, max(text.find("\0"), 0)) + 1


def check_edit(rel_path: str, old_text: str | None, new_text: str) -> None:
    """Raise ToolError if `new_text` is worse than `old_text` (None: a new file).

    Python: refused when the new text does not compile where the old one did (or is new);
    when both fail, and for the other languages, refused when the new text has more
    tree-sitter ERROR/MISSING nodes than the old.
    """
    lang = language_for(rel_path)
    if lang is None:
        return
    if lang == "python":
        failure = python_failure(new_text, rel_path)
        if failure is None:
            return
        if old_text is None or python_failure(old_text, rel_path) is None:
            data = new_text.encode("utf-8", "surrogatepass")
            raise ToolError(compile_message(rel_path, failure, data))
    new_data, new_problems = problems_of(lang, new_text)
    if not new_problems:
        return
    old_data, old_problems = (b"", []) if old_text is None else problems_of(lang, old_text)
    if len(new_problems) <= len(old_problems):
        return
    first = _first_new(new_problems, new_data, old_problems, old_data)
    raise ToolError(refusal_message(rel_path, first, new_data))


def _snippet(data: bytes, line: int) -> str:
    snippet = line_text(data, line).strip().replace("\0", "\\0")
    if len(snippet) > _SNIPPET_CHARS:
        snippet = snippet[: _SNIPPET_CHARS - 3] + "..."
    return snippet


def server_message(
    rel_path: str, line: int, data: bytes, server: str, code: str, message: str
) -> str:
    """The refusal text for a syntax error a language server reports: its message and line."""
    label = f"TS{code}" if server == "typescript-language-server" and code.isdigit() else code
    says = f"{server} says {label}: {message}" if label else f"{server} says: {message}"
    return (
        f"edit refused: it breaks the parse of {rel_path} at line {line}: "
        f"`{_snippet(data, line)}` ({says}); nothing was written. Fix the syntax and retry."
    )


def compile_message(rel_path: str, failure: CompileFailure, data: bytes) -> str:
    """The refusal text for a Python compile failure: the interpreter's message and line."""
    return (
        f"edit refused: it breaks the parse of {rel_path} at line {failure.line}: "
        f"`{_snippet(data, failure.line)}` ({_PY} says {failure.kind}: {failure.message}); "
        "nothing was written. Fix the code (syntax, indentation, tabs vs spaces) and retry."
    )


def refusal_message(rel_path: str, problem: SyntaxProblem, data: bytes) -> str:
    """The refusal text: where the parse breaks, a snippet of that line, and what to do."""
    return (
        f"edit refused: it breaks the parse of {rel_path} at line {problem.line}, "
        f"column {problem.column}: `{_snippet(data, problem.line)}` ({problem.describe()}); "
        "nothing was written. Fix the syntax of your code and retry."
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
