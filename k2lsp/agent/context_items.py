"""Context items a request can carry (`#file:path`, the current buffer, the selection, the
diagnostics), turned into the context block of the user message.

Items are plain objects (front-ends send them as structured arguments, never as text to parse):

    {"kind": "file", "path": "src/a.py"}
    {"kind": "buffer", "path": "src/a.py", "text": "...unsaved text...", "version": 7}
    {"kind": "selection", "path": "src/a.py", "startLine": 3, "endLine": 9, "text": "..."?}
    {"kind": "diagnostics", "path": "src/a.py", "items": [{"line": 4, "message": "...",
        "severity": "error", "source": "pyright", "code": "reportX"}]}

Every path is confined to the workspace (the secret denylist applies: a `.env` is refused like
the `read_file` tool refuses it), every text is redacted and capped (`ITEM_CHARS` each,
`TOTAL_CHARS` in all, with a note saying what was cut), and a bad item is a `UsageError` that
names it, so nothing is sent half-understood.
"""

from __future__ import annotations

from typing import Any

from k2lsp.errors import PathError, UsageError
from k2lsp.redact.cache import redact_text
from k2lsp.runs.workspace import Workspace

KINDS = ("file", "buffer", "selection", "diagnostics")
ITEM_CHARS = 20_000
TOTAL_CHARS = 60_000
MAX_ITEMS = 20
MAX_DIAGNOSTICS = 50


def _cap(text: str, limit: int, what: str) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({what} cut at {limit:,} of {len(text):,} characters)"


def _numbered(text: str, first: int = 1) -> str:
    lines = text.splitlines()
    return "\n".join(f"{n:>5}  {line}" for n, line in enumerate(lines, start=first))


def _path_of(item: dict[str, Any]) -> Any:
    """`path`, else the file path of a `file://` `uri`."""
    if item.get("path") is None and isinstance(item.get("uri"), str):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(item["uri"])
        if parts.scheme != "file":
            raise UsageError(f"context item uri {item['uri']!r} is not a file:// URI")
        return unquote(parts.path)
    return item.get("path")


def _rel(ws: Workspace, raw: Any, kind: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise UsageError(f'context item {kind!r} needs a "path" (relative to the workspace)')
    try:
        return ws.rel(ws.check_readable(raw.strip()))
    except PathError as exc:
        raise UsageError(f"context item {kind!r}: {exc}") from None


def _text_of(ws: Workspace, rel: str, kind: str) -> str:
    try:
        return ws.read_text(rel)
    except PathError as exc:
        raise UsageError(f"context item {kind!r}: {exc}") from None


def _line(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"context item 'selection': {name} must be a line number >= 1")
    return value


def render_item(ws: Workspace, item: Any) -> str:
    """One item as a Markdown section (UsageError naming what is wrong)."""
    if not isinstance(item, dict):
        raise UsageError(f"a context item must be an object, got {type(item).__name__}")
    kind = item.get("kind")
    if kind not in KINDS:
        raise UsageError(f"unknown context item kind {kind!r}; use one of: {', '.join(KINDS)}")
    rel = _rel(ws, _path_of(item), str(kind))
    if kind == "file":
        body = _cap(_numbered(_text_of(ws, rel, kind)), ITEM_CHARS, rel)
        return f"File {rel}:\n```\n{body}\n```"
    if kind == "buffer":
        text = item.get("text")
        if not isinstance(text, str):
            text = _text_of(ws, rel, kind)
        version = item.get("version")
        shown = f" (editor buffer, version {version}, unsaved changes included)"
        if version is None:
            shown = " (editor buffer)"
        body = _cap(_numbered(text), ITEM_CHARS, rel)
        return f"Current buffer {rel}{shown}:\n```\n{body}\n```"
    if kind == "selection":
        start = _line(item.get("startLine"), "startLine")
        end = _line(item.get("endLine", start), "endLine")
        if end < start:
            raise UsageError("context item 'selection': endLine is before startLine")
        text = item.get("text")
        if not isinstance(text, str):
            text = "\n".join(_text_of(ws, rel, kind).splitlines()[start - 1 : end])
        body = _cap(_numbered(text, start), ITEM_CHARS, f"{rel} selection")
        return f"Selection {rel} lines {start}-{end}:\n```\n{body}\n```"
    return _diagnostics(rel, item.get("items"))


def _diagnostics(rel: str, items: Any) -> str:
    if not isinstance(items, list):
        raise UsageError("context item 'diagnostics' needs \"items\": a list of diagnostics")
    lines = []
    for d in items[:MAX_DIAGNOSTICS]:
        if not isinstance(d, dict) or not str(d.get("message") or "").strip():
            raise UsageError("context item 'diagnostics': each item needs a message")
        line = d.get("line")
        where = f"line {line}" if isinstance(line, int) and not isinstance(line, bool) else "?"
        sev = str(d.get("severity") or "").strip()
        src = str(d.get("source") or "").strip()
        code = str(d.get("code") or "").strip()
        tag = " ".join(x for x in (sev, f"[{src}{' ' + code if code else ''}]" if src else "") if x)
        message = " ".join(str(d["message"]).split())[:500]
        lines.append(f"- {rel} {where}: {tag + ': ' if tag else ''}{message}")
    if len(items) > MAX_DIAGNOSTICS:
        lines.append(f"- … {len(items) - MAX_DIAGNOSTICS} more not shown")
    return f"Diagnostics in {rel}:\n" + ("\n".join(lines) or "- none")


def render_context(
    root: Any, items: Any, settings: Any = None, overlay: dict[str, str] | None = None
) -> str:
    """The context block of `items` for the workspace `root` ("" when there are none);
    `overlay` (unsaved buffers) is read before the disk."""
    if items in (None, []):
        return ""
    if not isinstance(items, list):
        raise UsageError('"context" must be a list of context items')
    if len(items) > MAX_ITEMS:
        raise UsageError(f"too many context items ({len(items)}); send at most {MAX_ITEMS}")
    ws = Workspace.from_settings(root, settings, overlay)
    parts: list[str] = []
    used = 0
    for n, item in enumerate(items):
        section = redact_text(render_item(ws, item))
        if used + len(section) > TOTAL_CHARS:
            parts.append(f"({len(items) - n} more context item(s) left out: over the size cap)")
            break
        parts.append(section)
        used += len(section)
    return "\n\n".join(parts)
