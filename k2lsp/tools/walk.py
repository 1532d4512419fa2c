"""Glob filters of the `pattern`/`glob` tool arguments (ripgrep `--glob` semantics).

Which files exist at all is decided elsewhere, by the one listing engine in
`k2lsp.code.filelist` (ripgrep `--files`); these helpers only narrow its result.
"""

from __future__ import annotations

import fnmatch
import re

from k2lsp.code.filelist import RgTimeout, rg_binary

__all__ = ["RgTimeout", "glob_matches", "glob_to_regex", "rg_binary", "rg_type_args"]


def glob_to_regex(pattern: str) -> str:
    """Translate a gitignore-style glob (`*`, `?`, `[..]`, `**`) into a regex."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def glob_matches(glob: str, rel: str) -> bool:
    """ripgrep `--glob` semantics for one pattern: without `/` it matches the file name, with
    `/` the workspace-relative path; a leading `!` inverts it."""
    glob = glob.strip()
    if glob.startswith("!"):
        return not glob_matches(glob[1:], rel)
    if "/" not in glob.strip("/"):
        return fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], glob.strip("/"))
    return re.fullmatch(glob_to_regex(glob.lstrip("/")), rel) is not None


def rg_type_args(glob: str) -> list[str] | None:
    """ripgrep flags selecting files by a name glob while still honouring .gitignore
    (`--glob` would override ignore rules), or None when the glob needs a path filter."""
    glob = glob.strip()
    negate = glob.startswith("!")
    body = glob[1:] if negate else glob
    if not body or "/" in body or ":" in body:
        return None
    return ["--type-add", f"k2glob:{body}", "-T" if negate else "-t", "k2glob"]
