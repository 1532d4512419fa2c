"""Failing tests seen by a run become diagnostics (source "k2lsp") on the failing lines.

Each diagnostic carries `data = {"testId", "message"}` so its code action can offer
"K2: Fix failing test" for exactly that test. Each test result replaces every k2lsp
diagnostic published before (files that no longer fail are cleared).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from k2lsp.server import protocol

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer


def failure_fields(item: Any) -> dict[str, Any]:
    """One failure as a dict (dataclass, dict or object with attributes)."""
    if isinstance(item, dict):
        return item
    return {k: getattr(item, k, None) for k in ("test_id", "path", "line", "message")}


def to_rel(path: str, roots: list[Path]) -> str | None:
    """Workspace-relative posix path of a failure path (relative, or absolute in a root)."""
    p = PurePosixPath(path.replace("\\", "/"))
    if not p.is_absolute():
        return None if ".." in p.parts else p.as_posix()
    for root in roots:
        try:
            return Path(path).resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return None


class TestDiagnostics:
    """The k2lsp diagnostics currently published, per document URI."""

    def __init__(self) -> None:
        self.by_uri: dict[str, list[types.Diagnostic]] = {}

    def publish(
        self,
        ls: LanguageServer,
        root: Path,
        failures: list[Any],
        extra_roots: list[Path] | None = None,
        command: str = "",
    ) -> None:
        """Replace the diagnostics of every file with a failure, and clear passing ones."""
        fresh: dict[str, list[types.Diagnostic]] = {}
        for item in failures:
            f = failure_fields(item)
            rel = to_rel(str(f.get("path") or ""), [root, *(extra_roots or [])])
            if not rel:
                continue
            uri = (root / rel).as_uri()
            line = max(int(f.get("line") or 1) - 1, 0)
            test_id = str(f.get("test_id") or "")
            message = str(f.get("message") or "test failed").strip()
            rng = types.Range(
                start=types.Position(line=line, character=0),
                end=types.Position(line=line + 1, character=0),
            )
            fresh.setdefault(uri, []).append(
                types.Diagnostic(
                    range=rng,
                    severity=types.DiagnosticSeverity.Error,
                    source=protocol.DIAGNOSTIC_SOURCE,
                    code="test-failure",
                    message=f"{test_id or 'test'} failed: {message.splitlines()[0][:300]}"
                    if message
                    else f"{test_id} failed",
                    data={"testId": test_id, "message": message[:4000], "command": command},
                )
            )
        stale = [uri for uri in self.by_uri if uri not in fresh]  # the latest result rules
        for uri in stale:
            fresh[uri] = []
        for uri, diags in fresh.items():
            self.by_uri[uri] = diags
            ls.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=diags)
            )
