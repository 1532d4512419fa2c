"""Which of a language server's diagnostics say the text does not parse: the second half of
the syntax gate for languages whose own checker is a server (`k2lsp.code.gate` asks
tree-sitter first; a server that already runs in the run then judges what tree-sitter
forgives, e.g. TypeScript's `const x;` or a top-level `return`).

Each server marks syntax errors its own way; a server without a rule here is not asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

Diagnostic = dict[str, Any]


def _code(diag: Diagnostic) -> str:
    return str(diag.get("code") or "")


def _typescript(diag: Diagnostic) -> bool:
    # tsserver's grammar errors are TS1000-TS1999 (TS1005 "';' expected", TS1155 "'const'
    # declarations must be initialized", TS1108 "A 'return' statement can only be used
    # within a function body"); 2000+ are the type checker's.
    code = _code(diag)
    return (
        diag.get("source") in (None, "typescript", "ts")
        and code.isdigit()
        and 1000 <= int(code) < 2000
    )


def _rust_analyzer(diag: Diagnostic) -> bool:
    return _code(diag) == "syntax-error"


def _gopls(diag: Diagnostic) -> bool:
    return diag.get("source") == "syntax"  # gopls's parse errors (type errors: "compiler")


def _clangd(diag: Diagnostic) -> bool:
    return diag.get("category") == "Parse Issue"  # clangd's extension, asked for at initialize


RULES: dict[str, Callable[[Diagnostic], bool]] = {
    "typescript-language-server": _typescript,
    "rust-analyzer": _rust_analyzer,
    "gopls": _gopls,
    "clangd": _clangd,
}


def judges(server: str) -> bool:
    """Does k2lsp know how this server marks syntax errors?"""
    return server in RULES


def syntax_errors(server: str, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """The error-severity diagnostics of `server` that say the text does not parse, in order."""
    rule = RULES.get(server)
    if rule is None:
        return []
    found = [d for d in diagnostics if int(d.get("severity") or 1) == 1 and rule(d)]
    return sorted(found, key=line_of)


def line_of(diag: Diagnostic) -> int:
    """1-based line of a diagnostic."""
    start = (diag.get("range") or {}).get("start") or {}
    return int(start.get("line", 0)) + 1


def _key(diag: Diagnostic) -> tuple[str, str]:
    return (str(diag.get("code") or ""), str(diag.get("message") or "").strip())


def added(before: list[Diagnostic], after: list[Diagnostic]) -> list[Diagnostic]:
    """The diagnostics of `after` that `before` did not have (matched by code and message,
    each one of `before` used once), in `after`'s order."""
    old = Counter(_key(d) for d in before)
    out = []
    for diag in after:
        if old[_key(diag)] > 0:
            old[_key(diag)] -= 1
        else:
            out.append(diag)
    return out
