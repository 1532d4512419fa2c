"""Shared helpers of the file tools: confined paths, text with its line-ending style, atomic
writes that keep the file mode, and the compact diff shown after an edit."""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pydantic import BaseModel, model_validator

from k2lsp.errors import PathError
from k2lsp.fs import safefs
from k2lsp.runs.changes import unified_diff
from k2lsp.runs.workspace import MAX_TEXT_BYTES, decode_text
from k2lsp.tools.base import ToolError

if TYPE_CHECKING:
    from k2lsp.tools.base import ToolContext

DIFF_CAP_CHARS = 6_000


def confined(ctx: ToolContext, path: str) -> tuple[Path, str]:
    """Absolute path and workspace-relative posix path of `path`, or ToolError saying why not."""
    if not path or not path.strip():
        raise ToolError("path is empty; give a file path relative to the workspace root")
    try:
        abs_path = ctx.workspace.resolve(path)
    except PathError as exc:
        raise ToolError(str(exc)) from None
    return abs_path, ctx.workspace.rel(abs_path)


def check_secret(ctx: ToolContext, rel: str) -> None:
    """Refuse files on the workspace's secret denylist (unless the user allowed secrets)."""
    checker = getattr(ctx.workspace, "check_readable", None)
    if checker is None:
        return
    try:
        checker(rel)
    except PathError as exc:
        raise ToolError(str(exc)) from None


def is_secret(ctx: ToolContext, rel: str) -> bool:
    """Is `rel` on the secret denylist (and secrets not allowed)? Same rules as
    `Workspace.is_secret`, compiled once so filtering thousands of hits stays cheap."""
    ws = ctx.workspace
    if getattr(ws, "allow_secrets", False) or not hasattr(ws, "secret_patterns"):
        return False
    by_name, by_path = _secret_regexes(tuple(ws.secret_patterns()))
    name = rel.rsplit("/", 1)[-1]
    return bool(
        (by_name is not None and by_name.match(name))
        or (by_path is not None and by_path.match(rel))
    )


@functools.lru_cache(maxsize=16)
def _secret_regexes(
    patterns: tuple[str, ...],
) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    names = [fnmatch.translate(p) for p in patterns if "/" not in p]
    paths = [fnmatch.translate(q) for p in patterns if "/" in p for q in (p, "*/" + p)]
    return (
        re.compile("|".join(names)) if names else None,
        re.compile("|".join(paths)) if paths else None,
    )


class Params(BaseModel):
    """Tool arguments where an explicit `null` for an optional argument means its default
    (models often send `"glob": null`)."""

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {
            k: v
            for k, v in data.items()
            if not (v is None and k in fields and not fields[k].is_required())
        }


@dataclass
class TextFile:
    """A text file's content with its line endings normalised to LF, and how to write it back."""

    rel: str
    raw: str  # exactly as on disk (or in the editor buffer)
    crlf: bool  # every line ending is CRLF: edit `text`, write back with CRLF

    @functools.cached_property
    def text(self) -> str:
        """The content with LF line endings when the file is CRLF, else `raw` (converted once)."""
        return self.raw.replace("\r\n", "\n") if self.crlf else self.raw

    def diff_to(self, rel: str, text: str, disk: str) -> str:
        """`diff_of(rel, raw, disk)` for `disk == to_disk(text)`, without converting the
        line endings again: a CRLF file's LF forms are `.text` and `text` already."""
        if self.crlf and "\r\n" not in text:
            return unified_diff(rel, rel, self.text, text)
        return diff_of(rel, self.raw, disk)

    def to_disk(self, text: str) -> str:
        """`text` (in the form of `.text`) converted back to the file's line-ending style."""
        return text.replace("\r\n", "\n").replace("\n", "\r\n") if self.crlf else text


def uses_crlf(raw: str) -> bool:
    """True when the text has line endings and all of them are CRLF."""
    crlf = raw.count("\r\n")
    return crlf > 0 and crlf == raw.count("\n")


def load_text(ctx: ToolContext, abs_path: Path, rel: str) -> TextFile:
    """The text of an existing file (editor buffer first), refusing binary/non-UTF-8/huge files."""
    overlay = ctx.workspace.overlay
    if rel in overlay:
        raw = overlay[rel]
        return TextFile(rel, raw, uses_crlf(raw))
    if not abs_path.exists():
        raise ToolError(f"{rel} does not exist; use create_file to create it")
    if abs_path.is_dir():
        raise ToolError(f"{rel} is a directory, not a file; use list_files to see its files")
    size = abs_path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise ToolError(
            f"{rel} is {size:,} bytes, too large to edit as text (limit {MAX_TEXT_BYTES:,}); "
            "use run_command with a stream editor instead"
        )
    with open_read(ctx.root, abs_path) as fh:
        data = fh.read(MAX_TEXT_BYTES + 1)
    try:
        raw = decode_text(data, rel)
    except PathError as exc:
        raise ToolError(str(exc)) from None
    return TextFile(rel, raw, uses_crlf(raw))


def atomic_write(root: Path, abs_path: Path, text: str) -> None:
    """Write `text` as UTF-8 to `abs_path` under `root` atomically, keeping the file mode.

    Goes through `k2lsp.fs.safefs` (folder descriptors, no link followed): a folder swapped for a
    symlink by a process in the sandbox makes the write fail instead of landing outside.
    A cancelled or crashed write leaves either the old file or the new one, never a mix.
    """
    try:
        safefs.write_bytes(root, _rel_to(root, abs_path), text.encode("utf-8", "surrogatepass"))
    except PathError as exc:
        raise ToolError(str(exc)) from None


def open_read(root: Path, abs_path: Path) -> BinaryIO:
    """Open the resolved `abs_path` under `root` for reading without following any link (a
    folder swapped for a symlink since resolving makes this fail instead of reading outside)."""
    try:
        return safefs.open_read(root, _rel_to(root, abs_path))
    except PathError as exc:
        raise ToolError(str(exc)) from None


def remove_file(root: Path, abs_path: Path) -> None:
    """Delete the file or link `abs_path` under `root` without following links on the way."""
    try:
        safefs.unlink(root, _rel_to(root, abs_path))
    except PathError as exc:
        raise ToolError(str(exc)) from None


def _rel_to(root: Path, abs_path: Path) -> str:
    try:
        return Path(abs_path).relative_to(root).as_posix()
    except ValueError:
        raise ToolError(f"{abs_path} is outside the workspace {root}") from None


# How long the gate waits for a server's diagnostics of a text (each text is shown to the
# server as a new document, which always gets a publish: only a slow server waits this long;
# then tree-sitter's verdict stands).
GATE_SERVER_WAIT_S = 10.0


def gate(ctx: ToolContext, rel: str, old_text: str | None, new_text: str) -> None:
    """Run the syntax gate (refuses edits that add parse errors) before anything is written:
    tree-sitter, and Python's `compile()`, then `server_gate`."""
    from k2lsp.code.gate import check_edit

    check_edit(rel, old_text, new_text)
    server_gate(ctx, rel, old_text, new_text)


def server_gate(ctx: ToolContext, rel: str, old_text: str | None, new_text: str) -> None:
    """When the run already has a language server for `rel` whose syntax errors k2lsp can
    tell apart (`k2lsp.lspc.syntax`), refuse a text it finds more of them in than in the old
    one, with its message and line. No server is started for this; a server that fails or
    does not answer in time leaves tree-sitter's verdict standing."""
    from k2lsp.code.gate import server_message
    from k2lsp.lspc.pool import running_session
    from k2lsp.lspc.rpc import LspError
    from k2lsp.lspc.syntax import added, judges, line_of, syntax_errors

    session = running_session(ctx.state, rel)
    if session is None or not judges(session.name):
        return
    wait = GATE_SERVER_WAIT_S  # read at each call (tests on a loaded machine raise it)
    try:
        before = [] if old_text is None else session.scratch_diagnostics(rel, old_text, wait)
        after = session.scratch_diagnostics(rel, new_text, wait)
    except (LspError, OSError):
        return
    if before is None or after is None:
        return  # no answer in time: tree-sitter's verdict stands
    before = syntax_errors(session.name, before)
    after = syntax_errors(session.name, after)
    if len(after) <= len(before):
        return
    first = added(before, after)[0]  # more errors after than before: at least one is new
    data = new_text.encode("utf-8", "surrogatepass")
    raise ToolError(
        server_message(
            rel,
            line_of(first),
            data,
            session.name,
            str(first.get("code") or "")[:40],  # a server's text: bounded before the model
            " ".join(str(first.get("message") or "").split())[:300],
        )
    )


def remember_tree(rel: str, text: str) -> None:
    """Parse the text an edit wrote once and keep its tree (content-hash cache in
    `k2lsp.code.parse`): the next edit's symbol lookup and the repo map's refresh of the file
    reuse it instead of parsing it again. Nothing for files no grammar covers."""
    from k2lsp.code.languages import language_for
    from k2lsp.code.parse import parse_cached

    lang = language_for(rel)
    if lang is not None:
        parse_cached(lang, text.encode("utf-8", "surrogatepass"))


def diff_of(rel: str, old: str | None, new: str | None) -> str:
    """Unified diff of a change with LF line endings (for events and for the model)."""
    norm_old = None if old is None else old.replace("\r\n", "\n")
    norm_new = None if new is None else new.replace("\r\n", "\n")
    return unified_diff(rel, rel, norm_old, norm_new)


def compact(diff: str, limit: int = DIFF_CAP_CHARS) -> str:
    """The diff cut to `limit` characters with a note on how to check the rest."""
    if len(diff) <= limit:
        return diff
    cut = diff[:limit].rsplit("\n", 1)[0]
    more = len(diff) - len(cut)
    return f"{cut}\n[... diff truncated ({more:,} more characters); use read_file to check ...]\n"


def plural(n: int, noun: str) -> str:
    """`1 file`, `2 files`."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
