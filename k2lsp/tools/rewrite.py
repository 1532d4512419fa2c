"""`rewrite`: structural search and replace with ast-grep (`ast-grep-py`).

The model writes a code pattern with metavariables (`$X` one node, `$$$ARGS` any number of
nodes) and a replacement using the same names. A dry run (the default) answers with the match
count per file and a sample of before/after; `apply: true` writes the files, each through the
syntax gate (a file whose result would not parse is refused and left as it was).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import Field

from k2lsp.code import filelist
from k2lsp.lspc.text import TextEdit
from k2lsp.tools import fileops
from k2lsp.tools.base import ToolError, ToolResult, cap_output, tool
from k2lsp.tools.sites import apply_file_edits, in_scope

if TYPE_CHECKING:
    from k2lsp.tools.base import ToolContext

# File extension -> ast-grep language name.
LANGS = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".jsx": "javascript", ".ts": "typescript", ".mts": "typescript",
    ".cts": "typescript", ".tsx": "tsx", ".go": "go", ".rs": "rust", ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".java": "java", ".rb": "ruby",
}  # fmt: skip
_META = re.compile(r"\$\$\$([A-Z_][A-Z0-9_]*)|\$([A-Z_][A-Z0-9_]*)")
_WORD = re.compile(r"[A-Za-z_]\w{2,}")
SAMPLES = 5
MAX_FILES = 20_000


class RewriteParams(fileops.Params):
    """Arguments of rewrite."""

    pattern: str = Field(
        description="ast-grep pattern: code with metavariables, e.g. `old_name($$$ARGS)` or "
        "`$OBJ.get($KEY, None)`. `$X` matches one node, `$$$X` any number."
    )
    replacement: str = Field(
        description="Replacement code using the pattern's metavariables, e.g. "
        "`new_name($$$ARGS, strict=True)`."
    )
    paths: list[str] | None = Field(
        default=None, description="Files or folders to rewrite (default: the whole workspace)."
    )
    language: str | None = Field(
        default=None, description="Only files of this ast-grep language (python, typescript...)."
    )
    apply: bool = Field(
        default=False, description="false: dry run (count + sample); true: write the files."
    )


def _lang_of(rel: str) -> str | None:
    dot = rel.rfind(".")
    return LANGS.get(rel[dot:].lower()) if dot >= 0 else None


def expand(replacement: str, match: Any, source: str) -> str:
    """The replacement with each `$X` / `$$$X` replaced by the text it matched."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            nodes = match.get_multiple_matches(m.group(1))
            if not nodes:
                return ""
            return source[nodes[0].range().start.index : nodes[-1].range().end.index]
        node = match.get_match(m.group(2))
        if node is None:
            raise ToolError(f"the replacement uses ${m.group(2)}, which the pattern does not bind")
        return str(node.text())

    return _META.sub(sub, replacement)


def file_edits(rel: str, text: str, lang: str, pattern: str, replacement: str) -> list[TextEdit]:
    """The rewrite's edits of one file (character offsets)."""
    from ast_grep_py import SgRoot

    try:
        root = SgRoot(text, lang).root()
        matches = root.find_all(pattern=pattern)
    except Exception as exc:  # ast-grep raises on a pattern it cannot parse
        raise ToolError(f"ast-grep cannot use the pattern for {lang}: {exc}") from None
    out = []
    for match in matches:
        rng = match.range()
        out.append(TextEdit(rng.start.index, rng.end.index, expand(replacement, match, text)))
    return out


def _candidates(ctx: ToolContext, args: RewriteParams) -> list[str]:
    words = [w for w in _WORD.findall(_META.sub(" ", args.pattern))]
    files = [
        rel
        for rel in filelist.list_files(ctx.root)[:MAX_FILES]
        if in_scope(rel, args.paths)
        and _lang_of(rel) is not None
        and (args.language is None or _lang_of(rel) == args.language)
        and not fileops.is_secret(ctx, rel)
    ]
    if not words or not files:
        return files
    word = max(words, key=len)  # a cheap prefilter: files that contain the longest word
    keep = []
    for rel in files:
        try:
            abs_path, rel = fileops.confined(ctx, rel)
            if word in fileops.load_text(ctx, abs_path, rel).raw:
                keep.append(rel)
        except ToolError:
            continue
    return keep


@tool("rewrite", RewriteParams, writes="recorded", edits=True)
def rewrite(ctx: ToolContext, args: RewriteParams) -> ToolResult:
    """Structural search-and-replace (ast-grep): a code pattern with metavariables and a
    replacement. First call it with apply=false (default) to see the match count and samples,
    then with apply=true to write. Every changed file passes the syntax gate."""
    if not args.pattern.strip():
        raise ToolError("pattern is empty")
    per_file: dict[str, list[TextEdit]] = {}
    samples: list[str] = []
    for rel in _candidates(ctx, args):
        abs_path, rel = fileops.confined(ctx, rel)
        try:
            text = fileops.load_text(ctx, abs_path, rel).raw
        except ToolError:
            continue
        edits = file_edits(rel, text, _lang_of(rel) or "", args.pattern, args.replacement)
        edits = [e for e in edits if text[e.start : e.end] != e.new_text]
        if not edits:
            continue
        per_file[rel] = edits
        for edit in edits[: max(0, SAMPLES - len(samples))]:
            line = text.count("\n", 0, edit.start) + 1
            samples.append(f"{rel}:{line}:\n  - {text[edit.start : edit.end]}\n  + {edit.new_text}")
    total = sum(len(e) for e in per_file.values())
    counts = "\n".join(f"  {rel}: {len(e)}" for rel, e in sorted(per_file.items()))
    if not args.apply:
        head = f"Dry run: {_matches(total)} in {fileops.plural(len(per_file), 'file')}."
        text = f"{head}\n{counts}\nSample:\n" + "\n".join(samples) if total else head
        if total:
            text += "\nCall rewrite again with apply=true to write these changes."
        return ToolResult(True, cap_output(text), head)
    done = apply_file_edits(ctx, per_file)
    head = f"Rewrote {_matches(done.count)} in {fileops.plural(len(done.written), 'file')}."
    lines = [head, *(f"  {r}: {n}" for r, n in sorted(done.written.items()))]
    lines += [f"REFUSED {rel}: {why}" for rel, why in sorted(done.refused.items())]
    return ToolResult(not done.refused, cap_output("\n".join(lines)), head)


def _matches(n: int) -> str:
    return f"{n:,} match" if n == 1 else f"{n:,} matches"
