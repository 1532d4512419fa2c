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
SETTLE_TRIES = 30
SETTLE_PAUSE_S = 1.0
PROGRESS_GRACE_S = 2.0  # how long a fresh server may take to announce its loading work
READY_TIMEOUT_S = 300.0


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
        self._diag_version: dict[str, int | None] = {}  # the document version they are for
        self._scratch = 0  # scratch documents shown to the server (`scratch_diagnostics`)
        self._closed_scratch: set[str] = set()  # their late publishes are dropped
        self._cond = threading.Condition()
        self._lock = threading.Lock()  # one request sequence at a time
        self.settled = False  # has the server answered a query the same way twice?
        self._busy: set[str] = set()  # progress tokens of work the server is doing
        self._progress_seen = False
        self._ready_checked = False

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
            # In its own PID namespace the server cannot see our pid (it would exit at once).
            "processId": None if argv[0].endswith("bwrap") else os.getpid(),
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
    def _progress(self, method: str, params: Any) -> None:
        """Track the server's work-done progress (project loading, indexing)."""
        token = str(params.get("token")) if isinstance(params, dict) else ""
        with self._cond:
            if method == "window/workDoneProgress/create":
                self._busy.add(token)
            else:
                kind = (params.get("value") or {}).get("kind") if isinstance(params, dict) else None
                if kind == "begin":
                    self._busy.add(token)
                elif kind == "end":
                    self._busy.discard(token)
            self._progress_seen = True
            self._cond.notify_all()

    def wait_ready(self) -> None:
        """Before the first query: give the server a moment to announce work (loading a
        project), then wait until all announced work has ended."""
        with self._cond:
            if not self._ready_checked:
                self._cond.wait_for(lambda: self._progress_seen, PROGRESS_GRACE_S)
                self._ready_checked = True
            self._cond.wait_for(lambda: not self._busy or not self.alive, READY_TIMEOUT_S)

    def _notified(self, method: str, params: Any) -> None:
        if method in ("$/progress", "window/workDoneProgress/create"):
            self._progress(method, params)
            return
        if method != "textDocument/publishDiagnostics" or not isinstance(params, dict):
            return
        try:
            rel = rel_of_uri(str(params.get("uri", "")), self.root)
        except PathError:
            return
        items = params.get("diagnostics")
        with self._cond:
            if rel in self._closed_scratch:
                self.diagnostics.pop(rel, None)
                self._diag_seen.pop(rel, None)
                return
            self.diagnostics[rel] = (
                [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []
            )
            self._diag_seen[rel] = self._diag_seen.get(rel, 0) + 1
            version = params.get("version")
            self._diag_version[rel] = version if isinstance(version, int) else None
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
        self.wait_ready()
        return {
            "textDocument": {"uri": uri_of(self.root / rel)},
            "position": lines.position(line, column),
        }, lines

    def _references(self, rel: str, line: int, column: int) -> list[Site]:
        assert self.conn is not None
        params, _ = self._at(rel, line, column)
        params["context"] = {"includeDeclaration": True}
        raw = self.conn.request("textDocument/references", params, timeout=REQUEST_TIMEOUT_S)
        return self._sites(raw if isinstance(raw, list) else [])

    def _settle(self, rel: str, line: int, column: int) -> list[Site]:
        """The first query of a session: some servers (tsserver) answer from a half-loaded
        project at first, so ask until two answers in a row agree."""
        sites = self._references(rel, line, column)
        if self.settled:
            return sites
        for _ in range(SETTLE_TRIES):
            time.sleep(SETTLE_PAUSE_S)
            again = self._references(rel, line, column)
            if again == sites:
                break
            sites = again
        self.settled = True
        return sites

    def references(self, rel: str, line: int, column: int) -> list[Site]:
        """Every reference (declaration included) of the symbol at 1-based line/column."""
        with self._lock:
            return self._settle(rel, line, column)

    def rename(self, rel: str, line: int, column: int, new_name: str) -> Any:
        """The server's WorkspaceEdit renaming the symbol at 1-based line/column."""
        assert self.conn is not None
        with self._lock:
            if not self.settled:
                self._settle(rel, line, column)
            params, _ = self._at(rel, line, column)
            params["newName"] = new_name
            return self.conn.request("textDocument/rename", params, timeout=REQUEST_TIMEOUT_S)

    def file_diagnostics(
        self, rel: str, text: str | None = None, wait_s: float = 20.0
    ) -> list[dict[str, Any]]:
        """The server's diagnostics for `rel` with content `text` (default: the file on disk),
        waiting for the server to publish them after the document was sent. A server that
        says which version its diagnostics are for is waited for until they are for this
        one (a late publish for an earlier text is not taken for this text's)."""
        with self._lock:
            with self._cond:
                seen = self._diag_seen.get(rel, 0)
            before = self.texts.get(rel)
            self.sync(rel, text)
            version = self.versions[rel]
            unchanged = seen > 0 and before == self.texts[rel]

            def current() -> bool:
                published = self._diag_version.get(rel)
                if published is not None:  # the server says which text they are for
                    return published == version
                return unchanged or self._diag_seen.get(rel, 0) != seen

            deadline = time.monotonic() + wait_s
            with self._cond:
                while not current() and self.alive:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                return list(self.diagnostics.get(rel, []))

    def scratch_diagnostics(
        self, rel: str, text: str, wait_s: float
    ) -> list[dict[str, Any]] | None:
        """The server's first diagnostics for `text` shown to it as a new document next to
        `rel` (never written to disk; closed again), or None when none came within `wait_s`.

        A document the server has never seen gets a publish of its own even when it has no
        problem, and no earlier text's late publish can be taken for it: unlike the file's own
        document, whose publishes say neither which text they are for nor come at all when
        nothing changed (typescript-language-server), the answer is about this text."""
        assert self.conn is not None
        folder, _, name = rel.rpartition("/")
        with self._lock:
            self._scratch += 1
            scratch = f"{folder}/" if folder else ""
            scratch += f".k2lsp-gate-{os.getpid()}-{self._scratch}-{name}"
            uri = uri_of(self.root / scratch)
            document = {"uri": uri, "languageId": language_id(rel), "version": 1, "text": text}
            self.conn.notify("textDocument/didOpen", {"textDocument": document})
            try:
                deadline = time.monotonic() + wait_s
                with self._cond:
                    while not self._diag_seen.get(scratch) and self.alive:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return None
                        self._cond.wait(left)
                    return list(self.diagnostics.get(scratch, []))
            finally:
                self.conn.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
                with self._cond:
                    self._closed_scratch.add(scratch)
                    self.diagnostics.pop(scratch, None)
                    self._diag_seen.pop(scratch, None)
                    self._diag_version.pop(scratch, None)

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
        "publishDiagnostics": {
            "relatedInformation": False,
            "versionSupport": True,
            "categorySupport": True,  # clangd: "Parse Issue" marks its syntax errors
        },
    },
    "window": {"workDoneProgress": True},
}
