"""Code-intelligence tools: `repo_map`, `find_symbol`, `replace_symbol`, `insert_code`.

Importing this module is cheap: tree-sitter and the grammars load on first use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from k2lsp.tools import fileops
from k2lsp.tools.base import ToolError, cap_output, tool

if TYPE_CHECKING:
    from k2lsp.code.repomap import RepoMap
    from k2lsp.code.symbols import Symbol
    from k2lsp.tools.base import ToolContext

_MAPS: OrderedDict[tuple[str, str], RepoMap] = OrderedDict()
_MAX_MAPS = 3  # maps kept in memory (one per workspace root; run copies come and go)
_MAPS_LOCK = threading.Lock()
_REF_LIMIT = 40


def repo_map_for(ctx: ToolContext) -> RepoMap:
    """The process-wide map of the workspace root (created on first use, then refreshed)."""
    from k2lsp.code.cache import default_cache_dir
    from k2lsp.code.repomap import RepoMap

    state_dir = getattr(ctx.settings, "state_dir", None)
    cache_dir = default_cache_dir(Path(state_dir) if state_dir else None)
    key = (str(ctx.root), str(cache_dir))
    with _MAPS_LOCK:
        rmap = _MAPS.get(key)
        if rmap is None:
            rmap = RepoMap(ctx.root, cache_dir)
            _MAPS[key] = rmap
            while len(_MAPS) > _MAX_MAPS:
                _MAPS.popitem(last=False)[1].flush()
        _MAPS.move_to_end(key)
    return rmap


def refresh(ctx: ToolContext, rmap: RepoMap) -> None:
    """Bring the map up to date: only the files the run's tools recorded since the last look
    when nothing else may have written (the journal), else a full scan."""
    rmap.refresh(ctx.journal.take(), ctx.journal)


class RepoMapParams(BaseModel):
    """Arguments of repo_map."""

    paths: list[str] | None = Field(
        None, description="Limit the map to these files or folders (default: whole repo)."
    )
    max_tokens: int = Field(
        2048, ge=128, le=16384, description="Size budget of the map in tokens (~4 chars each)."
    )
    focus: list[str] | None = Field(
        None,
        description="Files or identifiers the task is about; "
        "their definitions and neighbours rank higher.",
    )


@tool("repo_map", RepoMapParams, writes="none")
def repo_map(ctx: ToolContext, args: RepoMapParams) -> str:
    """Outline of the repository: the definitions (classes, functions, methods with signatures and
    line numbers) that the rest of the code refers to most, within a token budget. Use it first to
    find where things live; then read_file the parts you need."""
    from k2lsp.code.rank import mentions

    rmap = repo_map_for(ctx)
    with _MAPS_LOCK:
        refresh(ctx, rmap)
        only = tuple(_rel_dir(ctx, p) for p in (args.paths or []))
        focus_files: set[str] = set()
        focus_names: set[str] = set()
        for item in args.focus or []:
            if item in rmap.index:
                focus_files.add(item)
            else:
                focus_names.add(item)
        task = ctx.state.get("task") if isinstance(ctx.state, dict) else None
        if isinstance(task, str) and task:
            files, names = mentions(task, rmap)
            focus_files |= files
            focus_names |= names
        text = rmap.render(args.max_tokens, frozenset(focus_files), frozenset(focus_names), only)
    return cap_output(text, hint="lower max_tokens or pass paths to narrow the map")


def _rel_dir(ctx: ToolContext, path: str) -> str:
    abs_path, rel = fileops.confined(ctx, path)
    if not abs_path.exists():
        raise ToolError(f"{rel} does not exist; use list_files to see what is there")
    return "" if rel == "." else rel


class FindSymbolParams(BaseModel):
    """Arguments of find_symbol."""

    name: str = Field(
        ..., description="Name to find: `func`, `Class`, `Class.method` or `Outer.Inner.method`."
    )
    path: str | None = Field(None, description="Only look in this file or folder.")


@tool("find_symbol", FindSymbolParams, writes="none")
def find_symbol(ctx: ToolContext, args: FindSymbolParams) -> str:
    """Where a function, class or method is defined (file, lines, signature, doc) and the lines
    that refer to it by name. Pass the qualified name (`Class.method`) to narrow the search."""
    name = args.name.strip()
    if not name:
        raise ToolError(
            "name is empty; give a function, class or method name such as `Parser.parse`"
        )
    only = _rel_dir(ctx, args.path) if args.path else ""
    rmap = repo_map_for(ctx)
    with _MAPS_LOCK:
        refresh(ctx, rmap)
        defs = [(rel, s) for rel, s in rmap.definitions(name) if _under(rel, only)]
        exact = [(rel, s) for rel, s in defs if s.qualname == name or s.name == name]
        defs = exact or defs
        all_names = rmap.defined_names() if not defs else []
    out: list[str] = []
    if defs:
        out.append(f"{len(defs)} definition(s) of {name!r}:")
        for rel, s in defs[:50]:
            doc = f"  # {s.doc}" if s.doc else ""
            out.append(
                f"{rel}:{s.start_line}-{s.end_line} {s.kind} {s.qualname}: {s.signature}{doc}"
            )
    else:
        import difflib

        word = name.rsplit(".", 1)[-1]
        pool = [n for n in all_names if n[:1].lower() == word[:1].lower()]  # keeps difflib quick
        close = difflib.get_close_matches(word, pool, n=8, cutoff=0.6)
        hint = f" Similar names: {', '.join(close)}." if close else ""
        out.append(f"No definition of {name!r} found{' under ' + only if only else ''}.{hint}")
    skip = {(rel, ln) for rel, s in defs for ln in (s.start_line, _core_line(ctx.root / rel, s))}
    refs = _references(ctx, name.rsplit(".", 1)[-1], only, skip)
    out.append(
        f"References to {name.rsplit('.', 1)[-1]!r}: "
        f"{len(refs)}{'+' if len(refs) >= _REF_LIMIT else ''}"
    )
    out.extend(refs)
    return cap_output("\n".join(out) + "\n", hint="pass path to narrow the search")


def _core_line(path: Path, sym: Symbol) -> int:
    """Line of the definition keyword (after decorators), which is not a reference."""
    if sym.core_byte == sym.start_byte:
        return sym.start_line
    try:
        with open(path, "rb") as fh:
            head = fh.read(sym.core_byte)
    except OSError:
        return sym.start_line
    return head.count(b"\n") + 1


def _under(rel: str, only: str) -> bool:
    return not only or rel == only or rel.startswith(only.rstrip("/") + "/")


def _references(ctx: ToolContext, word: str, only: str, skip: set[tuple[str, int]]) -> list[str]:
    from k2lsp.code.refs import grep_word

    hits = grep_word(ctx.root, word, only, limit=_REF_LIMIT + len(skip))
    out = []
    for rel, line, text in hits:
        if (rel, line) in skip or fileops.is_secret(ctx, rel):
            continue
        out.append(f"{rel}:{line}: {text}")
        if len(out) >= _REF_LIMIT:
            break
    return out


class ReplaceSymbolParams(BaseModel):
    """Arguments of replace_symbol."""

    path: str = Field(..., description="File holding the definition.")
    symbol: str = Field(
        ...,
        description="`func`, `Class`, `Class.method`, `Outer.Inner.method`; "
        "add @LINE to pick one of several.",
    )
    code: str = Field(..., description="The complete new definition (signature and body).")


@tool("replace_symbol", ReplaceSymbolParams, writes="recorded", edits=True)
def replace_symbol(ctx: ToolContext, args: ReplaceSymbolParams) -> str:
    """Replace one whole definition (function, class, method) by name. Give the complete new
    definition; indentation is fitted for you. Decorators / `export` / attributes before the
    definition are kept unless your code starts with them; leading comments are kept unless your
    code starts with a comment. Refused (nothing written) if the result would not parse."""
    from k2lsp.code.astedit import LookupFailure, replace_definitions, resolve_in_text

    abs_path, rel, tf, lang = _open_code_file(ctx, args.path)
    try:
        sym = resolve_in_text(lang, tf.text, args.symbol, rel)
    except LookupFailure as exc:
        raise ToolError(str(exc)) from None
    if not args.code.strip():
        raise ToolError(
            "code is empty; to delete a definition use edit_file with an empty new_text"
        )
    candidates = replace_definitions(lang, tf.text, sym, args.code)
    new_text = _first_passing(rel, tf.text, candidates)
    fileops.server_gate(ctx, rel, tf.text, new_text)
    diff = _write(ctx, abs_path, rel, tf, new_text)
    where = f"was lines {sym.start_line}-{sym.end_line}"
    return f"Replaced {sym.kind} {sym.qualname} in {rel} ({where}).\n{diff}"


class InsertCodeParams(BaseModel):
    """Arguments of insert_code."""

    path: str = Field(..., description="File to insert into.")
    code: str = Field(
        ..., description="Code to insert (whole lines; indentation is fitted to the anchor)."
    )
    after_symbol: str | None = Field(
        None, description="Insert after this definition (`func`, `Class.method`)."
    )
    before_symbol: str | None = Field(
        None, description="Insert before this definition (and its leading comments)."
    )


@tool("insert_code", InsertCodeParams, writes="recorded", edits=True)
def insert_code(ctx: ToolContext, args: InsertCodeParams) -> str:
    """Insert code after or before a definition (at its indentation level, separated by blank
    lines), or at the end of the file when no anchor is given. Refused (nothing written) if the
    result would not parse."""
    from k2lsp.code.astedit import LookupFailure, insert_text, resolve_in_text

    if args.after_symbol and args.before_symbol:
        raise ToolError("give after_symbol or before_symbol, not both")
    if not args.code.strip():
        raise ToolError("code is empty; nothing to insert")
    abs_path, rel, tf, lang = _open_code_file(ctx, args.path)
    anchor_name = args.after_symbol or args.before_symbol
    anchor = None
    if anchor_name:
        try:
            anchor = resolve_in_text(lang, tf.text, anchor_name, rel)
        except LookupFailure as exc:
            raise ToolError(str(exc)) from None
    new_text = insert_text(lang, tf.text, args.code, anchor, after=bool(args.after_symbol))
    _first_passing(rel, tf.text, [new_text])
    fileops.server_gate(ctx, rel, tf.text, new_text)
    diff = _write(ctx, abs_path, rel, tf, new_text)
    where = (
        f"after {anchor.qualname}"
        if anchor and args.after_symbol
        else (f"before {anchor.qualname}" if anchor else "at the end")
    )
    return f"Inserted code {where} in {rel}.\n{diff}"


def _open_code_file(ctx: ToolContext, path: str) -> tuple[Path, str, fileops.TextFile, str]:
    from k2lsp.code.languages import language_for, unsupported_note

    abs_path, rel = fileops.confined(ctx, path)
    fileops.check_secret(ctx, rel)
    text_file = fileops.load_text(ctx, abs_path, rel)
    lang = language_for(rel)
    if lang is None:
        raise ToolError(unsupported_note(rel))
    return abs_path, rel, text_file, lang


def _first_passing(rel: str, old: str, candidates: list[str]) -> str:
    """The first candidate text that passes the syntax gate's own checks (tree-sitter and
    `compile()`); the first refusal otherwise. The caller has a running server judge the one
    chosen (`fileops.server_gate`)."""
    from k2lsp.code.gate import check_edit

    first_error: ToolError | None = None
    for text in candidates:
        try:
            check_edit(rel, old, text)
            return text
        except ToolError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


def _write(ctx: ToolContext, abs_path: Path, rel: str, tf: fileops.TextFile, new_text: str) -> str:
    if new_text == tf.text:
        return "(no change: the file already has exactly this code)"
    disk = tf.to_disk(new_text)
    fileops.atomic_write(ctx.root, abs_path, disk)
    if rel in ctx.workspace.overlay:
        ctx.workspace.overlay[rel] = disk
    fileops.remember_tree(rel, new_text)  # the gate's tree when it parsed; the next lookup's
    diff = tf.diff_to(rel, new_text, disk)  # one diff: the event's and the model's
    ctx.record_edit(rel, diff, old=tf.raw, new=disk)
    return fileops.compact(diff)
