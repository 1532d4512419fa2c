"""Shared by the language-server tools and `rewrite`: find where a symbol is, apply a set of
character edits to files of the run copy through the syntax gate, and list sites as text."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from k2lsp.lspc.fallback import file_sites
from k2lsp.lspc.text import Site, TextEdit, apply_edits
from k2lsp.tools import fileops
from k2lsp.tools.base import ToolError

if TYPE_CHECKING:
    from k2lsp.tools.base import ToolContext

_DEF_WORDS = r"(?:def|class|function|const|let|var|func|fn|interface|type|struct|enum)"
MAX_LISTED_SITES = 400


def locate(ctx: ToolContext, rel: str, symbol: str, line: int | None) -> Site:
    """Where `symbol` is in `rel`: on `line` if given, else its definition there, else its
    first occurrence as an identifier. ToolError when it is not in the file."""
    abs_path, rel = fileops.confined(ctx, rel)
    fileops.check_secret(ctx, rel)
    text = fileops.load_text(ctx, abs_path, rel).raw
    name = symbol.rsplit(".", 1)[-1].strip()
    if not re.fullmatch(r"[^\W\d]\w*", name):
        raise ToolError(f"symbol {symbol!r} is not an identifier; give the bare name (e.g. parse)")
    sites = file_sites(rel, text, name) or _word_sites(rel, text, name)
    if line is not None:
        on_line = [s for s in sites if s.line == line]
        if not on_line:
            near = ", ".join(str(s.line) for s in sites[:10]) or "none"
            raise ToolError(f"{name!r} is not on line {line} of {rel} (it is on lines: {near})")
        return on_line[0]
    if not sites:
        raise ToolError(f"{name!r} does not occur in {rel}; use search or find_symbol to find it")
    lines = text.split("\n")
    pattern = re.compile(rf"\b{_DEF_WORDS}\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*=")
    for site in sites:
        if pattern.search(lines[site.line - 1]):
            return site
    return sites[0]


def _word_sites(rel: str, text: str, name: str) -> list[Site]:
    out = []
    for match in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", text):
        line = text.count("\n", 0, match.start()) + 1
        col = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
        out.append(Site(rel, line, col, len(name)))
    return out


@dataclass
class Applied:
    """What applying edits did: files written, edits per file, files refused and why."""

    written: dict[str, int] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Edits written."""
        return sum(self.written.values())


def apply_file_edits(
    ctx: ToolContext,
    per_file: dict[str, list[TextEdit]],
    count: Callable[[str, str, str], int] | None = None,
) -> Applied:
    """Apply each file's edits (all or nothing per file): confined path, secret check, syntax
    gate, atomic write without following links, `edit` event. A refused file is reported.
    `count(rel, old, new)` says how many sites a file's change is (default: its edits)."""
    done = Applied()
    for rel in sorted(per_file):
        edits = per_file[rel]
        if not edits:
            continue
        try:
            abs_path, rel = fileops.confined(ctx, rel)
            fileops.check_secret(ctx, rel)
            tf = fileops.load_text(ctx, abs_path, rel)
            new = apply_edits(tf.raw, edits)
            if new == tf.raw:
                continue
            fileops.gate(ctx, rel, tf.raw, new)
            fileops.atomic_write(ctx.root, abs_path, new)
        except (ToolError, ValueError) as exc:
            done.refused[rel] = str(exc)
            continue
        if rel in ctx.workspace.overlay:
            ctx.workspace.overlay[rel] = new
        ctx.record_edit(rel, fileops.diff_of(rel, tf.raw, new), old=tf.raw, new=new)
        done.written[rel] = count(rel, tf.raw, new) if count else len(edits)
    return done


def in_scope(rel: str, paths: list[str] | None) -> bool:
    """Is `rel` one of `paths` (files or folders)? Everything is when `paths` is empty."""
    if not paths:
        return True
    for p in paths:
        p = p.strip().strip("/")
        if p in ("", ".") or rel == p or rel.startswith(p + "/"):
            return True
    return False


def listing(ctx: ToolContext, sites: list[Site], limit: int = MAX_LISTED_SITES) -> str:
    """Sites grouped by file as `path:line:col: text`, capped with a note."""
    by_file: dict[str, list[Site]] = defaultdict(list)
    for site in sites:
        by_file[site.path].append(site)
    out: list[str] = []
    shown = 0
    for rel in sorted(by_file):
        lines = _file_lines(ctx, rel)
        for site in by_file[rel]:
            if shown >= limit:
                out.append(f"[... {len(sites) - shown} more sites; narrow with `paths` ...]")
                return "\n".join(out)
            text = lines[site.line - 1].strip()[:160] if site.line <= len(lines) else ""
            out.append(f"{rel}:{site.line}:{site.column}: {text}")
            shown += 1
    return "\n".join(out)


def _file_lines(ctx: ToolContext, rel: str) -> list[str]:
    try:
        abs_path, rel = fileops.confined(ctx, rel)
        return fileops.load_text(ctx, abs_path, rel).raw.split("\n")
    except ToolError:
        return []


def summary_counts(sites: list[Site]) -> str:
    """`N sites in M files`."""
    files = len({s.path for s in sites})
    return f"{fileops.plural(len(sites), 'site')} in {fileops.plural(files, 'file')}"
