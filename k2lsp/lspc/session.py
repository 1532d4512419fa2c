"""One language server on one run copy: initialize, keep opened documents in sync with the
files on disk, and ask it for references, renames and diagnostics."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from k2lsp.errors import PathError
from k2lsp.fs import safefs
from k2lsp.lspc.rpc import Connection, LspError
from k2lsp.lspc.servers import ServerSpec, confine, language_id
from k2lsp.lspc.text import Lines, Site, rel_of_uri, uri_of

INIT_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 120.0
MAX_DOC_BYTES = 4 * 1024 * 1024


class ServerSession:
    """A started, initialized server for `root` (use `start`, then the query methods)."""

    def __init__(self, spec: ServerSpec, root: Path, confine_mode: str = "auto") -> None:
        self.spec = spec
        self.root = root.resolve()
        self.confine_mode = confine_mode
        self.confinement = ""
        self.conn: Connection | None = None
        self.versions: dict[str, int] = {}
        self.texts: dict[str, str] = {}
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        self._diag_seen: dict[str, int] = {}
        self._cond = threading.Condition()
        self._lock = threading.Lock()  # one request sequence at a time

    @property
    def name(self) -> str:
        """The server program's name."""
        return self.spec.name

    def start(self) -> ServerSession:
        """Spawn (confined) and initialize the server."""
        argv, self.confinement = confine(self.spec, self.root, self.confine_mode)
        env = {k: v for k, v in os.environ.items() if not _secretish(k)}
        self.conn = Connection(argv, cwd=str(self.root), env=env, on_notify=self._notified)
        params = {
            "processId": os.getpid(),
            "rootUri": uri_of(self.root),
            "rootPath": str(self.root),
            "workspaceFolders": [{"uri": uri_of(self.root), "name": self.root.name}],
            "capabilities": _CAPABILITIES,
            "clientInfo": {"name": "k2lsp"},
        }
        try:
            self.conn.request("initialize", params, timeout=INIT_TIMEOUT_S)
            self.conn.notify("initialized", {})
        except LspError:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Shut the server down (idempotent)."""
        if self.conn is not None:
            self.conn.close()

    @property
    def alive(self) -> bool:
        """Is the server running?"""
        return self.conn is not None and self.conn.alive

    # ---- documents ------------------------------------------------------------------------
    def _notified(self, method: str, params: Any) -> None:
        if method != "textDocument/publishDiagnostics" or not isinstance(params, dict):
            return
        try:
            rel = rel_of_uri(str(params.get("uri", "")), self.root)
        except PathError:
            return
        items = params.get("diagnostics")
        with self._cond:
            self.diagnostics[rel] = (
                [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []
            )
            self._diag_seen[rel] = self._diag_seen.get(rel, 0) + 1
            self._cond.notify_all()

    def read(self, rel: str) -> str:
        """The file's current text on disk (no link followed)."""
        with safefs.open_read(self.root, rel) as fh:
            data = fh.read(MAX_DOC_BYTES + 1)
        if len(data) > MAX_DOC_BYTES:
            raise LspError(f"{rel} is too large for the language server")
        return data.decode("utf-8", "surrogateescape")

    def sync(self, rel: str, text: str | None = None) -> str:
        """Open `rel` in the server, or send its new text when it changed; its text."""
        assert self.conn is not None
        text = self.read(rel) if text is None else text
        uri = uri_of(self.root / rel)
        if rel not in self.versions:
            self.versions[rel] = 1
            self.conn.notify(
                "textDocument/didOpen",
                {
                    "textDocument": {
                        "uri": uri,
                        "languageId": language_id(rel),
                        "version": 1,
                        "text": text,
                    }
                },
            )
        elif self.texts.get(rel) != text:
            self.versions[rel] += 1
            self.conn.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": self.versions[rel]},
                    "contentChanges": [{"text": text}],
                },
            )
        self.texts[rel] = text
        return text

    def refresh(self) -> None:
        """Re-send every opened document whose file changed on disk (tools edited it)."""
        for rel in list(self.versions):
            try:
                self.sync(rel)
            except (OSError, PathError):
                continue

    # ---- queries --------------------------------------------------------------------------
    def _at(self, rel: str, line: int, column: int) -> tuple[dict[str, Any], Lines]:
        self.refresh()
        lines = Lines(self.sync(rel))
        return {
            "textDocument": {"uri": uri_of(self.root / rel)},
            "position": lines.position(line, column),
        }, lines

    def references(self, rel: str, line: int, column: int) -> list[Site]:
        """Every reference (declaration included) of the symbol at 1-based line/column."""
        assert self.conn is not None
        with self._lock:
            params, _ = self._at(rel, line, column)
            params["context"] = {"includeDeclaration": True}
            raw = self.conn.request("textDocument/references", params, timeout=REQUEST_TIMEOUT_S)
        return self._sites(raw if isinstance(raw, list) else [])

    def rename(self, rel: str, line: int, column: int, new_name: str) -> Any:
        """The server's WorkspaceEdit renaming the symbol at 1-based line/column."""
        assert self.conn is not None
        with self._lock:
            params, _ = self._at(rel, line, column)
            params["newName"] = new_name
            return self.conn.request("textDocument/rename", params, timeout=REQUEST_TIMEOUT_S)

    def file_diagnostics(
        self, rel: str, text: str | None = None, wait_s: float = 20.0
    ) -> list[dict[str, Any]]:
        """The server's diagnostics for `rel` with content `text` (default: the file on disk),
        waiting for the server to publish them after the document was sent."""
        with self._lock:
            with self._cond:
                seen = self._diag_seen.get(rel, 0)
            before = self.texts.get(rel)
            self.sync(rel, text)
            if before == self.texts[rel] and seen:
                with self._cond:
                    return list(self.diagnostics.get(rel, []))
            deadline = time.monotonic() + wait_s
            with self._cond:
                while self._diag_seen.get(rel, 0) == seen and self.alive:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                return list(self.diagnostics.get(rel, []))

    def _sites(self, locations: list[Any]) -> list[Site]:
        out: set[Site] = set()
        texts: dict[str, Lines] = {}
        for loc in locations:
            if not isinstance(loc, dict) or not isinstance(loc.get("range"), dict):
                continue
            try:
                rel = rel_of_uri(str(loc.get("uri", "")), self.root)
                if rel not in texts:
                    texts[rel] = Lines(self.texts.get(rel) or self.read(rel))
            except (PathError, OSError, LspError):
                continue  # outside the run copy (a library): not ours to change
            lines = texts[rel]
            start = lines.offset(loc["range"].get("start") or {})
            end = lines.offset(loc["range"].get("end") or {})
            out.add(lines.site(rel, loc["range"].get("start") or {}, max(end - start, 0)))
        return sorted(out)


def _secretish(name: str) -> bool:
    """Environment variables a language server never needs (keys, tokens, passwords)."""
    upper = name.upper()
    return any(w in upper for w in ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH"))


_CAPABILITIES: dict[str, Any] = {
    "general": {"positionEncodings": ["utf-16"]},
    "workspace": {
        "workspaceEdit": {"documentChanges": True, "resourceOperations": []},
        "configuration": True,
        "workspaceFolders": True,
    },
    "textDocument": {
        "synchronization": {"didSave": True},
        "references": {},
        "rename": {"prepareSupport": False},
        "publishDiagnostics": {"relatedInformation": False, "versionSupport": True},
    },
    "window": {"workDoneProgress": False},
}
