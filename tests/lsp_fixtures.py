"""Test harness for the language server: a real `k2lsp --stdio` process driven by a pytest-lsp
client that behaves like a small editor (buffers with versions, applyEdit that really applies
versioned edits and sends didChange, scripted approval answers, recorded k2lsp/stream batches).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import make_test_lsp_client

SERVER_CMD = [sys.executable, "-m", "k2lsp", "--stdio"]
API_KEY = "sk-test-0123456789abcdefghijklmnop"


def plain(value: Any) -> Any:
    """namedtuple-like objects from custom notifications -> plain dicts/lists."""
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def apply_text_edits(text: str, edits: list[types.TextEdit]) -> str:
    """Apply LSP TextEdits (UTF-16 positions) the way an editor does."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(pos: types.Position) -> int:
        if pos.line >= len(lines):
            return len(text)
        line = lines[pos.line]
        units, i = 0, 0
        while i < len(line) and units < pos.character:
            units += len(line[i].encode("utf-16-le")) // 2
            i += 1
        return starts[pos.line] + i

    spans = sorted(
        ((offset(e.range.start), offset(e.range.end), e.new_text) for e in edits), reverse=True
    )
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text


@dataclass
class Editor:
    """The test-side editor state around a pytest-lsp client."""

    client: LanguageClient
    root: Path
    docs: dict[str, tuple[int, str]] = field(default_factory=dict)  # uri -> (version, text)
    apply_edits: bool = True  # False: answer applyEdit with applied=false
    applied: list[types.WorkspaceEdit] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)  # applyEdit labels, in order
    approvals: list[str] = field(default_factory=list)  # answers to showMessageRequest, in order
    questions: list[types.ShowMessageRequestParams] = field(default_factory=list)
    stream: list[dict[str, Any]] = field(default_factory=list)  # k2lsp/stream payloads
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    untrusted: list[dict[str, Any]] = field(default_factory=list)  # k2lsp/untrusted payloads
    reviews: list[dict[str, Any]] = field(default_factory=list)  # k2lsp/review payloads
    timeline: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # both, in order
    before_apply: Callable[[], Any] | None = None  # hook run when applyEdit arrives

    def uri(self, rel: str) -> str:
        """File URI of a workspace-relative path."""
        return (self.root / rel).as_uri()

    def open(self, rel: str, text: str | None = None) -> str:
        """didOpen a file (its disk text unless `text` is given); returns the URI."""
        uri = self.uri(rel)
        if text is None:
            text = (self.root / rel).read_text(encoding="utf-8")
        self.docs[uri] = (1, text)
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )
        return uri

    def change(self, uri: str, text: str) -> None:
        """Replace a buffer's text (a user edit), bumping its version."""
        version = self.docs[uri][0] + 1
        self.docs[uri] = (version, text)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    def text(self, rel: str) -> str:
        """The buffer text of an open file, else the disk text."""
        uri = self.uri(rel)
        if uri in self.docs:
            return self.docs[uri][1]
        return (self.root / rel).read_text(encoding="utf-8")

    def handle_apply(
        self, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        """Apply a WorkspaceEdit like an editor: check versions, change buffers, notify."""
        self.labels.append(params.label)
        if self.before_apply is not None:
            self.before_apply()
        if not self.apply_edits:
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason="user declined")
        edit = params.edit
        self.applied.append(edit)
        for change in edit.document_changes or []:
            if isinstance(change, types.TextDocumentEdit):
                uri = change.text_document.uri
                version = change.text_document.version
                if uri in self.docs and version is not None and self.docs[uri][0] != version:
                    return types.ApplyWorkspaceEditResult(
                        applied=False, failure_reason=f"version mismatch for {uri}"
                    )
        for change in edit.document_changes or []:
            self._apply_one(change)
        for uri, edits in (edit.changes or {}).items():
            self._edit(uri, list(edits))
        return types.ApplyWorkspaceEditResult(applied=True)

    def _apply_one(self, change: Any) -> None:
        from pygls.uris import to_fs_path

        if isinstance(change, types.TextDocumentEdit):
            self._edit(change.text_document.uri, list(change.edits))
        elif isinstance(change, types.CreateFile):
            Path(to_fs_path(change.uri) or "").write_text("", encoding="utf-8")
        elif isinstance(change, types.DeleteFile):
            Path(to_fs_path(change.uri) or "").unlink()
            self.docs.pop(change.uri, None)
        elif isinstance(change, types.RenameFile):
            Path(to_fs_path(change.old_uri) or "").rename(to_fs_path(change.new_uri) or "")

    def _edit(self, uri: str, edits: list[types.TextEdit]) -> None:
        from pygls.uris import to_fs_path

        if uri in self.docs:
            text = apply_text_edits(self.docs[uri][1], edits)
            self.change(uri, text)
        else:  # a closed file: the editor opens it in a buffer; we write it to disk
            path = Path(to_fs_path(uri) or "")
            old = path.read_text(encoding="utf-8") if path.exists() else ""
            path.write_text(apply_text_edits(old, edits), encoding="utf-8")

    def logs(self) -> str:
        """Every window/logMessage text so far."""
        return "\n".join(m.message for m in self.client.log_messages)

    def events(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """All streamed events (of one run), in arrival order."""
        return [
            e for batch in self.stream if run_id in (None, batch["runId"]) for e in batch["events"]
        ]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        """Poll until `predicate()` holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise TimeoutError("condition not met in time")
            await asyncio.sleep(0.02)

    async def command(self, name: str, arg: dict[str, Any] | None = None) -> Any:
        """workspace/executeCommand with one object argument."""
        params = types.ExecuteCommandParams(
            command=name, arguments=[arg] if arg is not None else None
        )
        return plain(await self.client.workspace_execute_command_async(params))

    async def finished(self, run_id: str, timeout: float = 150.0) -> dict[str, Any]:
        """Wait for the run's status to leave `running`; its RunInfo."""
        info: dict[str, Any] = {}

        async def done() -> bool:
            nonlocal info
            status = await self.command("k2lsp.status", {})
            info = next(r for r in status["runs"] if r["runId"] == run_id)
            return info["state"] not in ("running", "preview", "delivering")

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await done():
            if loop.time() > deadline:
                raise TimeoutError(f"run {run_id} did not finish: {info}")
            await asyncio.sleep(0.05)
        return info


def capabilities(
    *, stream: bool, document_changes: bool = True, resource_ops: bool = True, progress: bool = True
) -> types.ClientCapabilities:
    """Client capabilities of an editor with (or without) our custom channel."""
    ops = (
        [
            types.ResourceOperationKind.Create,
            types.ResourceOperationKind.Delete,
            types.ResourceOperationKind.Rename,
        ]
        if resource_ops
        else None
    )
    return types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(
            apply_edit=True,
            configuration=True,
            workspace_edit=types.WorkspaceEditClientCapabilities(
                document_changes=document_changes, resource_operations=ops
            ),
        ),
        window=types.WindowClientCapabilities(
            work_done_progress=progress,
            show_document=types.ShowDocumentClientCapabilities(support=True),
        ),
        experimental={"k2lsp": {"stream": True}} if stream else None,
    )


def server_env(base_url: str, home: Path) -> dict[str, str]:
    """Environment of the server process: the fake K2 host and a private home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2LSP_")}
    env.update(
        {
            "K2LSP_BASE_URL": base_url,
            "K2LSP_API_KEY": API_KEY,
            "K2LSP_MODEL": "kimi-k2-thinking",
            "K2LSP_PROVIDER": "openai-compatible",
            "HOME": str(home),
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        }
    )
    return env


def _register(client: LanguageClient, editor_ref: list[Editor]) -> None:
    converter = client.protocol._converter

    def command_or_action(obj: Any, _: Any) -> Any:
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, types.Command)
        return converter.structure(obj, types.CodeAction)

    converter.register_structure_hook(types.Command | types.CodeAction, command_or_action)

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        return editor_ref[0].handle_apply(params)

    @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    def ask(params: types.ShowMessageRequestParams) -> types.MessageActionItem | None:
        editor = editor_ref[0]
        editor.questions.append(params)
        answer = editor.approvals.pop(0) if editor.approvals else None
        return types.MessageActionItem(title=answer) if answer else None

    @client.feature("k2lsp/stream")
    def stream(params: Any) -> None:
        editor_ref[0].stream.append(plain(params))
        editor_ref[0].timeline.append(("stream", editor_ref[0].stream[-1]))

    @client.feature("k2lsp/untrusted")
    def untrusted(params: Any) -> None:
        editor_ref[0].untrusted.append(plain(params))

    @client.feature("k2lsp/review")
    def review(params: Any) -> None:
        editor_ref[0].reviews.append(plain(params))

    @client.feature("k2lsp/delivery")
    def delivery(params: Any) -> None:
        editor_ref[0].deliveries.append(plain(params))
        editor_ref[0].timeline.append(("delivery", editor_ref[0].deliveries[-1]))


async def start_editor(
    root: Path,
    base_url: str,
    home: Path,
    *,
    stream: bool = True,
    init_options: dict[str, Any] | None = None,
    caps: types.ClientCapabilities | None = None,
    configuration: dict[str, Any] | None = None,
    env: dict[str, str | None] | None = None,
) -> Editor:
    """Spawn `k2lsp --stdio`, initialize it for `root`, and return the editor around it.

    `env` changes the server's environment (a None value removes the variable)."""
    ref: list[Editor] = []

    def factory() -> LanguageClient:
        client = make_test_lsp_client()
        _register(client, ref)
        return client

    environ = server_env(base_url, home)
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    config = ClientServerConfig(
        server_command=SERVER_CMD, client_factory=factory, server_env=environ
    )
    client = await config.start()
    assert isinstance(client, LanguageClient)
    editor = Editor(client, root)
    ref.append(editor)
    if configuration is not None:
        client.set_configuration(configuration, section="k2lsp")
    inner: dict[str, Any] = {"sandbox": "none", **({"streamNotifications": True} if stream else {})}
    options = {"k2lsp": {**inner, **(init_options or {})}}
    await client.initialize_session(
        types.InitializeParams(
            capabilities=caps or capabilities(stream=stream),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options=options,
        )
    )
    return editor


async def stop_editor(editor: Editor) -> None:
    """Shut the server down cleanly."""
    await editor.client.shutdown_session()
    await editor.client.stop()


def make_project(root: Path) -> Path:
    """A small Python project: calc.py with a bug and a pytest test for it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "calc.py").write_text(
        "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n", encoding="utf-8"
    )
    tests = root / "tests"
    tests.mkdir(exist_ok=True)
    (tests / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n", encoding="utf-8"
    )
    return root


FIX_ADD = ("edit_file", {"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"})


def code_action_params(
    uri: str,
    start: tuple[int, int],
    end: tuple[int, int],
    diagnostics: list[types.Diagnostic] | None = None,
    only: list[str] | None = None,
) -> types.CodeActionParams:
    """CodeActionParams for a range (0-based (line, character) pairs)."""
    rng = types.Range(
        start=types.Position(line=start[0], character=start[1]),
        end=types.Position(line=end[0], character=end[1]),
    )
    return types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=rng,
        context=types.CodeActionContext(diagnostics=diagnostics or [], only=only),
    )
