"""File tools: read_file (numbered, paged), list_files (tree honouring .gitignore),
create_file and delete_file (atomic, gated, recorded as edits)."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

from pydantic import Field

from k2lsp.code import filelist
from k2lsp.tools import fileops
from k2lsp.tools.base import OUTPUT_CAP_CHARS, ToolContext, ToolError, ToolResult, tool
from k2lsp.tools.pager import read_page
from k2lsp.tools.walk import glob_matches

PAGE_LINES = 400
PAGE_CHARS = 30_000
LIST_CAP = 500


class ReadFileParams(fileops.Params):
    """Arguments of read_file."""

    path: str = Field(description="File path relative to the workspace root.")
    start_line: int | None = Field(
        default=None, ge=1, description="First line to show (1-based). Default: 1."
    )
    end_line: int | None = Field(
        default=None,
        ge=1,
        description=f"Last line to show (inclusive). Default: a page of {PAGE_LINES} lines.",
    )


@tool("read_file", ReadFileParams, writes="none")
def read_file(ctx: ToolContext, args: ReadFileParams) -> ToolResult:
    """Read a text file with line numbers (`number<TAB>line`; the numbers are not part of the
    file). Large files come in pages of about 400 lines; the footer gives the next call."""
    abs_path, rel = fileops.confined(ctx, args.path)
    fileops.check_secret(ctx, rel)
    start = args.start_line or 1
    if args.end_line is not None and args.end_line < start:
        raise ToolError(f"end_line ({args.end_line}) is before start_line ({start}); swap them")
    end = args.end_line if args.end_line is not None else start + PAGE_LINES - 1
    if rel in ctx.workspace.overlay:
        page = read_page(
            io.BytesIO(ctx.workspace.overlay[rel].encode("utf-8", "surrogatepass")),
            rel,
            start,
            end,
            PAGE_CHARS,
        )
    else:
        _require_regular_file(abs_path, rel)
        with fileops.open_read(ctx.root, abs_path) as fh:
            page = read_page(fh, rel, start, end, PAGE_CHARS)
    if page.total_lines == 0:
        return ToolResult(True, f"{rel} is empty (0 lines).", f"read {rel} (empty)")
    if start > page.total_lines:
        raise ToolError(
            f"start_line {start} is past the end of {rel}, which has {page.total_lines} lines; "
            f"use a start_line between 1 and {page.total_lines}"
        )
    last = page.lines[-1][0]
    body = "\n".join(f"{n:>6}\t{text}" for n, text in page.lines)
    text = body + "\n" + _footer(rel, start, last, page.total_lines, page.cut_by_chars)
    return ToolResult(True, text, f"read {rel} lines {start}-{last} of {page.total_lines}")


def _require_regular_file(abs_path: Path, rel: str) -> None:
    try:
        st = abs_path.stat()
    except FileNotFoundError:
        raise ToolError(
            f"{rel} does not exist; use list_files or search to find the right path"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise ToolError(
            f"{rel} is a directory; use list_files with path={json.dumps(rel)} to see its files"
        )
    if not stat.S_ISREG(st.st_mode):
        raise ToolError(f"{rel} is not a regular file (device, socket or pipe); it cannot be read")


def _footer(rel: str, first: int, last: int, total: int, cut: bool) -> str:
    if first == 1 and last >= total:
        return f"[{rel}: all {total} lines]"
    note = f"[{rel}: lines {first}-{last} of {total}"
    if cut:
        note += f" (page cut at {PAGE_CHARS:,} characters)"
    if last < total:
        nxt = json.dumps({"path": rel, "start_line": last + 1})
        return note + f". Next page: read_file {nxt}]"
    return note + "; end of file]"


class ListFilesParams(fileops.Params):
    """Arguments of list_files."""

    path: str = Field(default=".", description="Folder to list, relative to the workspace root.")
    pattern: str | None = Field(
        default=None,
        description="Only files matching this glob: '*.py' (name) or 'src/**/test_*.py' (path).",
    )


@tool("list_files", ListFilesParams, writes="none")
def list_files(ctx: ToolContext, args: ListFilesParams) -> str:
    """List the files under a folder as a tree (folders, then their file names), skipping what
    .gitignore ignores and .git itself. Capped at 500 files; narrow with path or pattern."""
    abs_path, rel = fileops.confined(ctx, args.path or ".")
    if not abs_path.exists():
        raise ToolError(f"{rel} does not exist; list the parent folder to find the right path")
    if abs_path.is_file():
        return f"{rel} is a file ({abs_path.stat().st_size:,} bytes); use read_file to read it."
    files = _find_files(ctx, rel, args.pattern)
    where = "the workspace root" if rel == "." else rel
    matching = f" matching {args.pattern!r}" if args.pattern else ""
    if not files:
        return f"No files under {where}{matching} (ignored files are not listed)."
    head = f"{fileops.plural(len(files), 'file')} under {where}{matching}"
    head += " (.gitignored files and .git not shown):"
    tree, shown = _tree(ctx, files[:LIST_CAP])
    return head + "\n" + tree + _more(len(files) - shown)


def _more(extra: int) -> str:
    if extra <= 0:
        return ""
    return f"\n[... {extra} more files not shown; narrow with path or pattern ...]"


def _find_files(ctx: ToolContext, rel: str, pattern: str | None) -> list[str]:
    try:
        found = filelist.list_files(ctx.root, "" if rel == "." else rel)
    except filelist.RgTimeout as exc:
        raise ToolError(f"{exc}; list a smaller folder") from None
    except filelist.ListingError as exc:
        raise ToolError(str(exc)) from None
    if pattern:  # not rg's --glob: it would override .gitignore
        found = [f for f in found if glob_matches(pattern, f)]
    return sorted(found, key=_tree_key)


def _tree_key(rel: str) -> tuple[str, str]:
    folder, _, name = rel.rpartition("/")
    return folder, name


def _tree(ctx: ToolContext, files: list[str]) -> tuple[str, int]:
    """The tree text of `files` (within OUTPUT_CAP_CHARS) and how many files it shows."""
    lines: list[str] = []
    current: str | None = None
    chars = shown = 0
    for rel in files:
        folder, _, name = rel.rpartition("/")
        if folder != current:
            current = folder
            if folder:
                lines.append(f"{folder}/")
        mark = "  (secret: not readable)" if fileops.is_secret(ctx, rel) else ""
        lines.append(f"  {name}{mark}" if folder else f"{name}{mark}")
        chars += len(lines[-1]) + len(folder) + 2
        if chars > OUTPUT_CAP_CHARS:
            lines.pop()
            break
        shown += 1
    return "\n".join(lines), shown


class CreateFileParams(fileops.Params):
    """Arguments of create_file."""

    path: str = Field(description="Path of the new file, relative to the workspace root.")
    content: str = Field(description="The whole content of the new file.")


@tool("create_file", CreateFileParams, writes="recorded", edits=True)
def create_file(ctx: ToolContext, args: CreateFileParams) -> str:
    """Create a new file (and its parent folders) with the given content. Refuses existing
    files: use edit_file to change one. The content must parse (syntax gate)."""
    abs_path, rel = fileops.confined(ctx, args.path)
    if rel == "." or args.path.endswith(("/", os.sep)):
        raise ToolError(f"{args.path!r} names a folder; give the path of a file to create")
    if abs_path.is_dir():
        raise ToolError(f"{rel} is an existing directory; choose a file path inside it")
    if abs_path.exists() or abs_path.is_symlink() or rel in ctx.workspace.overlay:
        raise ToolError(
            f"{rel} already exists; use edit_file to change it "
            "(or delete_file first if you really mean to replace it wholesale)"
        )
    _check_parents(ctx, abs_path)
    fileops.gate(ctx, rel, None, args.content)
    fileops.atomic_write(ctx.root, abs_path, args.content)
    diff = fileops.diff_of(rel, None, args.content)
    ctx.record_edit(rel, diff, old=None, new=args.content)
    lines = args.content.count("\n") + (0 if args.content.endswith("\n") or not args.content else 1)
    return f"Created {rel} ({fileops.plural(lines, 'line')}).\n" + fileops.compact(diff)


def _check_parents(ctx: ToolContext, abs_path: Path) -> None:
    parent = abs_path.parent
    while parent != ctx.root and not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        rel, child = ctx.workspace.rel(parent), ctx.workspace.rel(abs_path)
        raise ToolError(f"{rel} is a file, so it cannot hold {child}; choose another path")


class DeleteFileParams(fileops.Params):
    """Arguments of delete_file."""

    path: str = Field(description="File to delete, relative to the workspace root.")


@tool("delete_file", DeleteFileParams, writes="recorded", edits=True)
def delete_file(ctx: ToolContext, args: DeleteFileParams) -> str:
    """Delete one file (not a folder). The change is recorded and can be undone."""
    abs_path, rel = fileops.confined(ctx, args.path)
    lexical = Path(os.path.normpath(ctx.root / args.path))
    if lexical.is_symlink() and lexical.is_relative_to(ctx.root):  # the link, not its target
        abs_path, rel = lexical, lexical.relative_to(ctx.root).as_posix()
    elif not abs_path.exists():
        raise ToolError(
            f"{rel} does not exist; nothing was deleted (check the path with list_files)"
        )
    elif abs_path.is_dir():
        raise ToolError(f"{rel} is a directory; delete_file removes single files only")
    old = None if abs_path.is_symlink() else _old_text(ctx, abs_path, rel)
    fileops.remove_file(ctx.root, abs_path)
    ctx.workspace.overlay.pop(rel, None)
    diff = fileops.diff_of(rel, old, None) if old is not None else f"Deleted {rel} (no text diff)\n"
    ctx.record_edit(rel, diff, old=old, new=None, binary=old is None)
    return f"Deleted {rel}."


def _old_text(ctx: ToolContext, abs_path: Path, rel: str) -> str | None:
    """The deleted text for the diff, or None for binary, huge or secret files."""
    if fileops.is_secret(ctx, rel):
        return None
    try:
        return fileops.load_text(ctx, abs_path, rel).raw
    except ToolError:
        return None
