"""References by name: identifier counts per file (for ranking) and reference lookup by word."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

from k2lsp import safefs
from k2lsp.code import filelist
from k2lsp.errors import PathError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words every language is full of; counting them only costs memory.
_STOP = frozenset(
    "if else for while return def class self this import from as in is not and or None True False "
    "const let var function new int void char static public private protected struct enum fn pub "
    "use mut impl type func package go defer nil true false null undefined try except finally "
    "with pass break continue raise throw catch case switch default do elif lambda yield await "
    "async export extends implements interface final long double float bool string auto unsigned "
    "signed sizeof typedef include define endif ifdef ifndef match where crate super Self".split()
)


def identifier_counts(text: str) -> dict[str, int]:
    """How often each identifier-like word occurs in `text` (common keywords left out)."""
    counts = Counter(_IDENT.findall(text))
    for word in _STOP.intersection(counts):
        del counts[word]
    return dict(counts)


def vote_weight(count: int) -> int:
    """Integer votes of a file mentioning a name `count` times: 1000 * sqrt(count), rounded.

    Integers keep running totals exact, so incremental updates never drift from a rebuild.
    """
    return _WEIGHTS[count] if count < len(_WEIGHTS) else int(1000 * math.sqrt(count) + 0.5)


_WEIGHTS = [int(1000 * math.sqrt(c) + 0.5) for c in range(4096)]


def identifier_votes(text: str) -> dict[str, int]:
    """`identifier_counts` turned into votes (see `vote_weight`)."""
    counts = identifier_counts(text)
    if counts and max(counts.values()) >= len(_WEIGHTS):
        return {k: vote_weight(c) for k, c in counts.items()}
    return dict(zip(counts.keys(), map(_WEIGHTS.__getitem__, counts.values()), strict=True))


def reference_lines(text: str, name: str, limit: int = 50) -> list[tuple[int, str]]:
    """(1-based line, stripped text) of lines mentioning `name` as a whole word."""
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")
    out: list[tuple[int, str]] = []
    for match in pattern.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        if out and out[-1][0] == line:
            continue
        start = text.rfind("\n", 0, match.start()) + 1
        end = text.find("\n", match.start())
        out.append((line, text[start : end if end >= 0 else len(text)].strip()[:160]))
        if len(out) >= limit:
            break
    return out


def grep_word(
    root: Path, word: str, under: str = "", limit: int = 50
) -> list[tuple[str, int, str]]:
    """(file, line, text) of lines mentioning `word` as a whole word, in path order (ripgrep
    over the files `filelist` lists; a scope the listing leaves out finds nothing)."""
    if not _IDENT.fullmatch(word):
        return _grep_python(root, word, under, limit)
    if under and not filelist.scope_listed(root, under):
        return []
    cmd = [
        *filelist.flags(root),
        "-n",
        "-w",
        "-F",
        "--no-heading",
        "--color",
        "never",
        "--sort",
        "path",
        "--max-count",
        "20",
        "--max-columns",
        "300",
        "-e",
        word,
        "--",
        under or ".",
    ]
    proc = filelist.run_rg(cmd, root)
    out: list[tuple[str, int, str]] = []
    for raw in proc.stdout.decode("utf-8", "replace").splitlines():
        parts = raw.split(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        rel = parts[0][2:] if parts[0].startswith("./") else parts[0]
        out.append((rel, int(parts[1]), parts[2].strip()[:160]))
        if len(out) >= limit:
            break
    return out


def _grep_python(root: Path, word: str, under: str, limit: int) -> list[tuple[str, int, str]]:
    from k2lsp.code.files import list_source_files

    out: list[tuple[str, int, str]] = []
    for rel in list_source_files(root):
        if under and not (rel == under or rel.startswith(under.rstrip("/") + "/")):
            continue
        try:  # never through a link: the sandbox may have planted one to a host file
            with safefs.open_read(root, rel) as fh:
                text = fh.read().decode("utf-8")
        except (OSError, UnicodeDecodeError, PathError):
            continue
        for line, snippet in reference_lines(text, word, limit - len(out)):
            out.append((rel, line, snippet))
        if len(out) >= limit:
            break
    return out
