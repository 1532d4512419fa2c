"""search: ripgrep over the workspace, hits as `path:line:text`.

The files searched are the files `k2lsp.code.filelist` lists: ripgrep runs with the listing's own
ignore flags (`filelist.flags`), and a `path` inside an ignored folder finds nothing."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import Field

from k2lsp.code import filelist
from k2lsp.tools import fileops
from k2lsp.tools.base import OUTPUT_CAP_CHARS, ToolContext, ToolError, tool
from k2lsp.tools.walk import glob_matches, rg_type_args

LINE_CAP = 300
RG_PREVIEW_NOTE = " [... omitted end of long line]"

RG_FLAGS = (
    "--heading", "--with-filename", "--line-number", "--null", "--color", "never",
    "--max-columns-preview",
)  # fmt: skip

# path -> that file's hits as b"LINE:text\n" lines (the ripgrep --heading body form).
Blocks = dict[str, bytes]


class SearchParams(fileops.Params):
    """Arguments of search."""

    pattern: str = Field(
        description="Regular expression (Rust/ripgrep syntax: like Python re, without "
        "look-around or backreferences), or literal text when fixed_strings is true."
    )
    path: str | None = Field(
        default=None, description="Folder or file to search, relative to the workspace root."
    )
    glob: str | None = Field(
        default=None,
        description="Only search files matching this glob, e.g. '*.py' or 'src/**/*.ts'.",
    )
    fixed_strings: bool = Field(
        default=False, description="Treat pattern as literal text instead of a regex."
    )
    max_results: int = Field(
        default=100, ge=1, le=1000, description="Most matching lines to return (default 100)."
    )


@tool("search", SearchParams, writes="none")
def search(ctx: ToolContext, args: SearchParams) -> str:
    """Search file contents for a regex (or literal text) and return matching lines as
    `path:line:text`, files in path order. Ignored (.gitignore) files are skipped."""
    if not args.pattern:
        raise ToolError("pattern is empty; give the text or regex to search for")
    abs_path, rel = fileops.confined(ctx, args.path or ".")
    if not abs_path.exists():
        raise ToolError(f"{rel} does not exist; search a folder that exists (or omit path)")
    if abs_path.is_file():
        fileops.check_secret(ctx, rel)
    notes: list[str] = []
    blocks = _rg_blocks(ctx, rel, args, notes)
    if ctx.workspace.overlay:
        _apply_overlay(ctx, blocks, _overlay_regex(args), rel, args.glob)
    for path in [p for p in blocks if fileops.is_secret(ctx, p)]:
        del blocks[path]
    return render(blocks, args, rel, notes)


def _compile(args: SearchParams) -> re.Pattern[str]:
    """The pattern as a Python regex (for editor buffers)."""
    try:
        return re.compile(re.escape(args.pattern) if args.fixed_strings else args.pattern)
    except re.error as exc:
        raise ToolError(_bad_regex(args.pattern, str(exc))) from None


def _overlay_regex(args: SearchParams) -> re.Pattern[str] | None:
    """The Python form of the pattern for editor buffers; None when only ripgrep knows the
    syntax (then the buffers' files keep their on-disk hits)."""
    try:
        return _compile(args)
    except ToolError:
        return None


def _bad_regex(pattern: str, detail: str) -> str:
    return (
        f"invalid regular expression {pattern!r}: {detail}. Escape special characters "
        r"(\( \[ \. \* \+ \? \{ \|) or pass fixed_strings=true to search for the literal text."
    )


def _rg_blocks(ctx: ToolContext, rel: str, args: SearchParams, notes: list[str]) -> Blocks:
    """Hits from ripgrep over the listed files under `rel`."""
    cmd = [*RG_FLAGS, *filelist.flags(ctx.root), "--max-columns", str(LINE_CAP)]
    type_args = rg_type_args(args.glob) if args.glob else None
    cmd += type_args or []  # (`--glob` would override .gitignore; path globs filter below)
    if args.fixed_strings:
        cmd.append("--fixed-strings")
    cmd += ["-e", args.pattern]
    try:
        if rel != ".":
            # ripgrep searches a path it is given even when ignore rules exclude it; the
            # listing decides whether the scope exists for the tools at all.
            if not filelist.scope_listed(ctx.root, rel):
                return {}
            cmd += ["--", rel]
        proc = filelist.run_rg(cmd, ctx.root)
    except filelist.RgTimeout as exc:
        raise ToolError(f"{exc}; narrow the search with path or glob") from None
    except filelist.ListingError as exc:
        raise ToolError(str(exc)) from None
    if proc.returncode == 2 and not proc.stdout:
        err = proc.stderr.decode("utf-8", "replace").strip()
        if "regex" in err or "error:" in err:
            detail = " ".join(ln.strip() for ln in err.splitlines() if ln.startswith("error:"))
            raise ToolError(_bad_regex(args.pattern, detail or err))
        raise ToolError(f"search failed: {err or 'ripgrep exited with status 2'}")
    blocks = parse_heading(proc.stdout, notes)
    if args.glob and type_args is None:
        blocks = {p: b for p, b in blocks.items() if glob_matches(args.glob, p)}
    return blocks


def parse_heading(out: bytes, notes: list[str]) -> Blocks:
    """Split `rg --heading --null` output into per-file blocks; other lines become notes."""
    blocks: Blocks = {}
    if not out:
        return blocks
    for chunk in out.split(b"\n\n"):
        path, sep, body = chunk.partition(b"\x00")
        if not sep:  # e.g. "x.bin: binary file matches (...)"
            notes += chunk.decode("utf-8", "replace").splitlines()
            continue
        name = path.decode("utf-8", "surrogateescape")
        blocks[name.removeprefix("./")] = body if body.endswith(b"\n") else body + b"\n"
    return blocks


def _split(text: str) -> list[str]:
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()  # no line after the final newline
    return lines


def _add_matches(blocks: Blocks, path: str, regex: re.Pattern[str], lines: Iterable[str]) -> None:
    hits = [
        f"{n}:{line.rstrip(chr(13))}\n" for n, line in enumerate(lines, 1) if regex.search(line)
    ]
    if hits:
        blocks[path] = "".join(hits).encode("utf-8", "surrogateescape")


def _apply_overlay(
    ctx: ToolContext, blocks: Blocks, regex: re.Pattern[str] | None, rel: str, glob: str | None
) -> None:
    """Unsaved editor buffers replace the disk content of their files in the results."""
    if regex is None:
        return
    for path, text in ctx.workspace.overlay.items():
        if rel != "." and path != rel and not path.startswith(rel + "/"):
            continue
        if glob and not glob_matches(glob, path):
            continue
        blocks.pop(path, None)
        _add_matches(blocks, path, regex, _split(text))


def render(blocks: Blocks, args: SearchParams, rel: str, notes: list[str]) -> str:
    """`path:line:text` lines in path order, capped at max_results with a note."""
    where = "the workspace" if rel == "." else rel
    total = sum(body.count(b"\n") for body in blocks.values())
    extra = "".join(f"\n{n}" for n in notes)
    if total == 0:
        scope = f" in files matching {args.glob!r}" if args.glob else ""
        return (
            f"No matches for {args.pattern!r} in {where}{scope} "
            f"(.gitignored files are not searched).{extra}"
        )
    out = _hit_lines(blocks, args.max_results)
    head = f"{fileops.plural(total, 'matching line')} in {fileops.plural(len(blocks), 'file')}:"
    if total > len(out):
        raise_hint = "" if len(out) < args.max_results else ", or raise max_results"
        extra = (
            f"\n[... {total - len(out):,} more matching lines not shown; narrow with path or "
            f"glob{raise_hint} ...]" + extra
        )
    return head + "\n" + "\n".join(out) + extra


def _hit_lines(blocks: Blocks, limit: int) -> list[str]:
    """The first `limit` hits in path order, within OUTPUT_CAP_CHARS in all."""
    out: list[str] = []
    chars = 0
    for path in sorted(blocks):
        for line in blocks[path].decode("utf-8", "replace").split("\n")[:-1]:
            num, _, text = line.partition(":")
            text = text.rstrip("\r")
            if text.endswith(RG_PREVIEW_NOTE):
                text = text.removesuffix(RG_PREVIEW_NOTE) + " … [line truncated]"
            elif len(text) > LINE_CAP:
                text = text[:LINE_CAP] + " … [line truncated]"
            hit = f"{path}:{num}:{text}"
            chars += len(hit) + 1
            if len(out) >= limit or chars > OUTPUT_CAP_CHARS:
                return out
            out.append(hit)
    return out
