"""Code actions: cheap, local, never touching the model or the disk (only the open document).

"K2: Fix <message>" per diagnostic in range; "K2: Explain", "K2: Refactor…", "K2: Write tests"
on a selection; "K2: Fix failing test" inside a test function (tree-sitter, cached per document
version and warmed in a worker thread after edits) or on a k2lsp test-failure diagnostic.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from k2lsp.server import protocol

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer
    from tree_sitter import Tree

    from k2lsp.testrun.testfuncs import DetectedTest

log = logging.getLogger(__name__)
_TITLE_CHARS = 80


def _range_dict(r: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": r.start.line, "character": r.start.character},
        "end": {"line": r.end.line, "character": r.end.character},
    }


def _action(
    title: str,
    command: str,
    args: dict[str, Any],
    kind: str | None,
    diagnostics: list[types.Diagnostic] | None = None,
    preferred: bool | None = None,
) -> types.CodeAction:
    return types.CodeAction(
        title=title,
        kind=kind,
        diagnostics=diagnostics,
        is_preferred=preferred,  # a client's default action (eglot, VS Code's auto-fix)
        command=types.Command(title=title, command=command, arguments=[args]),
    )


def short(text: str, limit: int = _TITLE_CHARS) -> str:
    """First line of `text`, cut to `limit` characters."""
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass
class _Entry:
    version: int | None
    tests: list[DetectedTest]
    tree: Tree | None  # kept so the next version parses incrementally
    data: bytes


class TestCache:
    """Test functions per document version, detected in a worker thread (never on the event
    loop): at open, shortly after each change, or when a code action finds the entry stale,
    in which case the request waits for that one detection instead of parsing itself."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, tuple[int | None, asyncio.Future[_Entry]]] = {}

    def tests(self, uri: str, path: str, version: int | None, text: str) -> list[DetectedTest]:
        """The tests of this document version (parsed now if no detection has run yet)."""
        hit = self.entries.get(uri)
        if hit is not None and hit.version == version:
            return hit.tests
        entry = _detect(path, version, text, hit)
        self.entries[uri] = entry
        return entry.tests

    async def ensure(self, uri: str, path: str, version: int | None, text: str) -> None:
        """Have this version's tests ready, detecting them in a worker thread if needed."""
        hit = self.entries.get(uri)
        if hit is not None and hit.version == version:
            return
        running = self._running.get(uri)
        if running is None or running[0] != version:
            pending = self._pending.pop(uri, None)
            if pending is not None:
                pending.cancel()
            running = self._start(uri, path, version, text)
        future = running[1]
        await asyncio.shield(future)
        # A detection that had already finished when we asked is awaited without yielding,
        # before its done-callback stored it: store it here, or the request parses again.
        self._finish(uri, version, future)

    def _start(
        self, uri: str, path: str, version: int | None, text: str
    ) -> tuple[int | None, asyncio.Future[_Entry]]:
        previous = self.entries.get(uri)
        future = asyncio.ensure_future(asyncio.to_thread(_detect, path, version, text, previous))
        running = (version, future)
        self._running[uri] = running
        future.add_done_callback(lambda f: self._finish(uri, version, f))
        return running

    def _finish(self, uri: str, version: int | None, future: asyncio.Future[_Entry]) -> None:
        """Store a finished detection (idempotent: its callback and `ensure` both call it)."""
        running = self._running.get(uri)
        if running is not None and running[1] is future:
            del self._running[uri]
        if future.cancelled() or future.exception() is not None:
            return
        current = self.entries.get(uri)
        if current is None or current.version != version:
            self.entries[uri] = future.result()

    def warm(
        self, uri: str, path: str, version: int | None, text: str, delay: float = 0.15
    ) -> None:
        """Re-detect tests in a worker thread shortly after the document changed."""
        old = self._pending.pop(uri, None)
        if old is not None:
            old.cancel()
        self._pending[uri] = asyncio.get_running_loop().create_task(
            self._warm(uri, path, version, text, delay)
        )

    async def _warm(
        self, uri: str, path: str, version: int | None, text: str, delay: float
    ) -> None:
        if delay:
            await asyncio.sleep(delay)
        self._pending.pop(uri, None)
        await self.ensure(uri, path, version, text)

    def forget(self, uri: str) -> None:
        """Drop a closed document."""
        self.entries.pop(uri, None)


def _detect(path: str, version: int | None, text: str, previous: _Entry | None) -> _Entry:
    from k2lsp.testrun.testfuncs import detect

    old = (previous.tree, previous.data) if previous and previous.tree is not None else None
    try:
        tests, tree, data = detect(path, text, old)
    except Exception:  # a grammar problem must never break code actions
        log.exception("test detection failed for %s", path)
        return _Entry(version, [], None, b"")
    return _Entry(version, tests, tree, data)


def code_actions(
    ls: LanguageServer, params: types.CodeActionParams, cache: TestCache
) -> list[types.CodeAction]:
    """Every K2 action for this range of this document."""
    uri, rng = params.text_document.uri, params.range
    out = [_diagnostic_action(ls, uri, diag) for diag in params.context.diagnostics]
    test_offered = any(
        a.command and a.command.command == protocol.CMD_FIX_FAILING_TEST for a in out
    )
    doc = ls.workspace.text_documents.get(uri)
    if doc is not None and not test_offered:
        test = _test_at(cache, uri, doc.path, doc.version, doc.source, rng.start.line)
        if test is not None:
            span = types.Range(
                start=types.Position(line=test.start_line, character=0),
                end=types.Position(line=test.end_line + 1, character=0),
            )
            args = {"uri": uri, "testName": test.name, "framework": test.framework,
                    "range": _range_dict(span)}  # fmt: skip
            title = f"K2: Fix failing test {short(test.name, 60)}"
            fix = types.CodeActionKind.QuickFix
            out.append(_action(title, protocol.CMD_FIX_FAILING_TEST, args, fix, preferred=True))
    # the fixes first (a client without isPreferred takes the first), then the selection's
    if _selected(list(doc.lines) if doc is not None else None, rng):
        sel = {"uri": uri, "range": _range_dict(rng)}
        refactor = types.CodeActionKind.RefactorRewrite
        out.append(_action("K2: Explain", protocol.CMD_EXPLAIN, sel, None))
        out.append(_action("K2: Refactor…", protocol.CMD_REFACTOR, sel, refactor))
        out.append(_action("K2: Write tests", protocol.CMD_WRITE_TESTS, sel, None))
    return _only(out, params.context.only)


def _selected(lines: list[str] | None, rng: types.Range) -> bool:
    """A real selection: a non-empty range holding more than white space (when the document
    is open; otherwise any non-empty range)."""
    if rng.start == rng.end:
        return False
    if lines is None:
        return True
    first, last = rng.start.line, min(rng.end.line, len(lines) - 1)
    if first > last:
        return False
    chunk = lines[first : last + 1]
    if first == last:  # character offsets are UTF-16 units; whitespace checks need no exactness
        return bool(chunk[0][rng.start.character : rng.end.character].strip())
    chunk[0] = chunk[0][rng.start.character :]
    if rng.end.line == last:
        chunk[-1] = chunk[-1][: rng.end.character]
    return any(line.strip() for line in chunk)


def _diagnostic_action(ls: LanguageServer, uri: str, diag: types.Diagnostic) -> types.CodeAction:
    """ "K2: Fix failing test" for a k2lsp test failure, else "K2: Fix <message>"."""
    data = diag.data if isinstance(diag.data, dict) else {}
    fix = types.CodeActionKind.QuickFix
    if diag.source == protocol.DIAGNOSTIC_SOURCE and data.get("testId"):
        args = {"uri": uri, "testName": data["testId"], "range": _range_dict(diag.range),
                "message": str(data.get("message") or diag.message)}  # fmt: skip
        title = f"K2: Fix failing test {short(data['testId'], 60)}"
        return _action(title, protocol.CMD_FIX_FAILING_TEST, args, fix, [diag], preferred=True)
    diag_json = ls.protocol._converter.unstructure(diag, types.Diagnostic)
    args = {"uri": uri, "diagnostic": diag_json}
    title = f"K2: Fix {short(diag.message)}"
    return _action(title, protocol.CMD_FIX_DIAGNOSTIC, args, fix, [diag], preferred=True)


def _test_at(
    cache: TestCache, uri: str, path: str, version: int | None, text: str, line: int
) -> DetectedTest | None:
    found = [t for t in cache.tests(uri, path, version, text) if t.start_line <= line <= t.end_line]
    return min(found, key=lambda t: t.end_line - t.start_line) if found else None


def _only(actions: list[types.CodeAction], only: Any) -> list[types.CodeAction]:
    if not only:
        return actions
    wanted = [str(getattr(k, "value", k)) for k in only]
    return [
        a
        for a in actions
        if a.kind is not None
        and any(
            str(getattr(a.kind, "value", a.kind)) == w
            or str(getattr(a.kind, "value", a.kind)).startswith(w + ".")
            for w in wanted
        )
    ]
