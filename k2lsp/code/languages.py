"""Which tree-sitter grammar reads which file, loaded lazily from the official grammar wheels.

Only the per-language wheels (tree-sitter-python, -javascript, -typescript, -go, -rust,
-java, -c, -cpp) are used; they ship compiled grammars and work offline.
"""

from __future__ import annotations

import importlib
import threading
from functools import cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Language, Parser

# Language id -> (module, function returning the grammar pointer).
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}

EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".h++": "cpp",
    ".ipp": "cpp",
}

SUPPORTED = tuple(sorted(_GRAMMARS))

_local = threading.local()


def language_for(path: str) -> str | None:
    """Language id for a file path (by extension), or None when no grammar covers it."""
    suffix = PurePosixPath(path.replace("\\", "/")).suffix.lower()
    return EXTENSIONS.get(suffix)


def unsupported_note(path: str) -> str:
    """A short note for files no grammar covers (tools fall back to text-only behaviour)."""
    known = ", ".join(sorted({ext for ext in EXTENSIONS}))
    return (
        f"{path}: no tree-sitter grammar for this file type (supported: {known}); "
        "use read_file/search/edit_file instead"
    )


@cache
def get_language(lang: str) -> Language:
    """The tree-sitter Language for a language id (imports the grammar wheel on first use)."""
    from tree_sitter import Language

    module_name, func_name = _GRAMMARS[lang]
    module = importlib.import_module(module_name)
    return Language(getattr(module, func_name)())


def get_parser(lang: str) -> Parser:
    """A parser for `lang`, one per thread (parsers are not safe to share across threads)."""
    from tree_sitter import Parser

    parsers: dict[str, Parser] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = {}
        _local.parsers = parsers
    parser = parsers.get(lang)
    if parser is None:
        parser = Parser(get_language(lang))
        parsers[lang] = parser
    return parser
