"""The language servers of one run: started lazily on first use, reused for every later call,
shut down with the run (`close`). A server that fails to start is remembered as missing for the
rest of the run (tools then fall back to tree-sitter and say why)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from k2lsp.errors import PathError
from k2lsp.lspc.rpc import LspError
from k2lsp.lspc.servers import find_server, language_of
from k2lsp.lspc.session import ServerSession
from k2lsp.lspc.text import Lines, TextEdit, lsp_edits, rel_of_uri

STATE_KEY = "lsp_pool"


class ServerPool:
    """Language servers for one root, one per language."""

    def __init__(self, root: Path, settings: Any = None) -> None:
        self.root = Path(root).resolve()
        self.settings = settings
        self.sessions: dict[str, ServerSession] = {}
        self.missing: dict[str, str] = {}  # language -> why there is no server
        self.started = 0
        self._lock = threading.Lock()

    def enabled(self) -> bool:
        """False when the settings turn language servers off."""
        return getattr(self.settings, "lsp_enabled", True) is not False

    def for_file(self, rel: str) -> tuple[ServerSession | None, str]:
        """The server for `rel` (started on first use) or None and why not."""
        language = language_of(rel)
        if language is None:
            return None, f"no language server handles {rel!r}"
        if not self.enabled():
            return None, "language servers are turned off (lsp_enabled = false)"
        with self._lock:
            session = self.sessions.get(language)
            if session is not None and session.alive:
                return session, ""
            if language in self.missing:
                return None, self.missing[language]
            spec = find_server(language, self.settings)
            if spec is None:
                why = f"no {language} language server is installed or configured"
                self.missing[language] = why
                return None, why
            mode = str(getattr(self.settings, "lsp_confine", "auto") or "auto")
            try:
                session = ServerSession(spec, self.root, mode).start()
            except LspError as exc:
                self.missing[language] = f"{spec.name} failed to start: {exc}"
                return None, self.missing[language]
            self.sessions[language] = session
            self.started += 1
            return session, ""

    def close(self) -> None:
        """Shut every server down."""
        with self._lock:
            sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            session.close()


def pool_of(state: dict[str, Any], root: Path, settings: Any = None) -> ServerPool:
    """The run's pool kept in the tool context's `state` (created on first use)."""
    pool = state.get(STATE_KEY)
    if not isinstance(pool, ServerPool) or pool.root != Path(root).resolve():
        pool = ServerPool(root, settings)
        state[STATE_KEY] = pool
    pool.settings = settings  # the run's settings now (lsp_enabled may have changed)
    return pool


def running_session(state: dict[str, Any], rel: str) -> ServerSession | None:
    """The run's live server for `rel`'s language if one was started already (never starts
    one: the syntax gate asks a server only when the run has one)."""
    pool = state.get(STATE_KEY)
    language = language_of(rel)
    if not isinstance(pool, ServerPool) or language is None or not pool.enabled():
        return None
    with pool._lock:
        session = pool.sessions.get(language)
    return session if session is not None and session.alive else None


def close_pool(state: dict[str, Any]) -> None:
    """Shut down the run's servers, if any were started."""
    pool = state.pop(STATE_KEY, None)
    if isinstance(pool, ServerPool):
        pool.close()


def workspace_edit_files(
    edit: Any, root: Path, read: Any
) -> tuple[dict[str, list[TextEdit]], list[str]]:
    """A WorkspaceEdit as character edits per root-relative file, plus what was left out
    (files outside the root, file creations/renames/deletions). `read(rel)` gives a file's text."""
    per_uri: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    if not isinstance(edit, dict):
        return {}, []
    for uri, edits in (edit.get("changes") or {}).items():
        if isinstance(edits, list):
            per_uri.setdefault(str(uri), []).extend(e for e in edits if isinstance(e, dict))
    for change in edit.get("documentChanges") or []:
        if not isinstance(change, dict):
            continue
        if "kind" in change:
            skipped.append(f"{change.get('kind')} of {change.get('uri') or change.get('newUri')}")
            continue
        doc = change.get("textDocument") or {}
        edits = change.get("edits") or []
        per_uri.setdefault(str(doc.get("uri", "")), []).extend(
            e for e in edits if isinstance(e, dict)
        )
    out: dict[str, list[TextEdit]] = {}
    for uri, edits in per_uri.items():
        try:
            rel = rel_of_uri(uri, root)
        except PathError:
            skipped.append(f"edit outside the workspace ({uri[:120]})")
            continue
        try:
            out[rel] = lsp_edits(Lines(read(rel)), edits)
        except ValueError as exc:
            skipped.append(f"{rel}: {exc}")
    return out, skipped
