"""MCP servers become namespaced tools: a real stdio server (tests/mcp_demo_server.py) started
through `McpHub`, its schemas checked, its results redacted and capped, its calls approved."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from k2lsp.config.settings import load_settings
from k2lsp.config.tables import McpServer
from k2lsp.runs.workspace import Workspace
from k2lsp.tools.base import ToolContext, ToolRegistry
from k2lsp.tools.mcp.bridge import check_schema, tool_name
from k2lsp.tools.mcp.hub import McpHub

pytestmark = pytest.mark.timeout(120)
SERVER = str(Path(__file__).with_name("mcp_demo_server.py"))
TOKEN = "demo-secret-token-9f8e7d6c5b4a"


def _spec(**kw: Any) -> McpServer:
    return McpServer(command=sys.executable, args=[SERVER], env={"DEMO_TOKEN": TOKEN}, **kw)


def _ctx(tmp_path: Path, approve: Any = None) -> ToolContext:
    state: dict[str, Any] = {} if approve is None else {"approve": approve}
    return ToolContext(workspace=Workspace(tmp_path), state=state)


async def test_stdio_server_tools_are_namespaced_checked_and_redacted(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K2LSP_API_KEY", "sk-never-passed-to-mcp-servers-123")
    hub = McpHub({"demo": _spec(allow_tools=["lookup_*", "show_token", "has_env"])}, cwd=tmp_path)
    await hub.start()
    try:
        names = [t.name for t in hub.tools()]
        assert names == [
            "mcp__demo__lookup_release",
            "mcp__demo__show_token",
            "mcp__demo__has_env",
        ]
        assert any("bad-schema" in p and "invalid JSON schema" in p for p in hub.problems)
        registry = ToolRegistry().extended(hub.tools())
        ctx = _ctx(tmp_path)
        out = await registry.execute("mcp__demo__lookup_release", {"package": "zlib"}, ctx)
        assert out.ok and "zlib latest release: 1.3.1" in out.text
        bad = await registry.execute("mcp__demo__lookup_release", {"package": 3}, ctx)
        assert not bad.ok and "invalid arguments" in bad.text and "package" in bad.text
        leaked = await registry.execute("mcp__demo__show_token", {}, ctx)
        assert leaked.ok and TOKEN not in leaked.text and "token=" in leaked.text
        key = await registry.execute("mcp__demo__has_env", {"name": "K2LSP_API_KEY"}, ctx)
        assert key.text == "K2LSP_API_KEY: unset"  # servers never get k2lsp's environment
        schema = registry.schemas()[0]["function"]["parameters"]
        assert schema["required"] == ["package"]
    finally:
        await hub.close()
    err = capfd.readouterr().err
    assert "demo server starting" in err and TOKEN not in err


async def test_calls_outside_allow_tools_ask_for_approval(tmp_path: Path) -> None:
    asked: list[tuple[str, str]] = []

    async def deny(kind: str, detail: str) -> bool:
        asked.append((kind, detail))
        return False

    hub = McpHub({"demo": _spec()}, cwd=tmp_path)
    await hub.start()
    try:
        registry = ToolRegistry().extended(hub.tools())
        out = await registry.execute(
            "mcp__demo__lookup_release", {"package": "zlib"}, _ctx(tmp_path, deny)
        )
        assert not out.ok and "declined" in out.text
        assert asked and asked[0][0] == "mcp" and "zlib" in asked[0][1]
        nobody = await registry.execute(
            "mcp__demo__lookup_release", {"package": "zlib"}, _ctx(tmp_path)
        )
        assert not nobody.ok and "allow_tools" in nobody.text
    finally:
        await hub.close()


async def test_a_server_that_cannot_start_is_reported_not_fatal(tmp_path: Path) -> None:
    hub = McpHub(
        {
            "gone": McpServer(command=str(tmp_path / "no-such-server")),
            "demo": _spec(),
        },
        cwd=tmp_path,
    )
    await hub.start()
    try:
        assert any("'gone' did not start" in p for p in hub.problems)
        assert "mcp__demo__lookup_release" in [t.name for t in hub.tools()]
    finally:
        await hub.close()


def test_tool_names_and_schemas() -> None:
    assert tool_name("docs", "search.v2") == "mcp__docs__search_v2"
    assert len(tool_name("d", "x" * 100)) == 64
    with pytest.raises(ValueError):
        check_schema({"type": "string"})
    with pytest.raises(ValueError):
        check_schema({"type": "object", "properties": {"a": {"type": 5}}})
    assert check_schema(None)["type"] == "object"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('command = "x"\nurl = "http://h/mcp"', "either `command`"),
        ('url = "ftp://h"', "http:// or https://"),
        ('command = "x"\nbogus = 1', "bogus"),
    ],
)
def test_bad_server_tables_are_clear_errors(tmp_path: Path, table: str, problem: str) -> None:
    from k2lsp.errors import UsageError

    (tmp_path / "k2lsp.toml").write_text(f"[mcp.servers.a]\n{table}\n")
    with pytest.raises(UsageError, match="mcp") as info:
        load_settings(tmp_path, trusted=True)
    assert problem in str(info.value)


def test_untrusted_repository_cannot_start_mcp_servers(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("K2LSP_TRUST_REPO", raising=False)
    (tmp_path / "k2lsp.toml").write_text(
        '[mcp.servers.evil]\ncommand = "sh"\nargs = ["-c", "id"]\n'
    )
    notes: list[str] = []
    settings = load_settings(tmp_path, notify=notes.append)
    assert settings.mcp.servers == {} and "mcp" in settings.untrusted and notes
    trusted = load_settings(tmp_path, trusted=True)
    assert list(trusted.mcp.servers) == ["evil"]


async def test_cancelled_while_starting_leaves_no_server_running(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    slow = tmp_path / "slow_server.py"
    slow.write_text(
        "import os, pathlib, time\n"
        f"pathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    hub = McpHub({"slow": McpServer(command=sys.executable, args=[str(slow)])}, cwd=tmp_path)
    start = asyncio.ensure_future(hub.start())
    for _ in range(600):
        if marker.exists() and marker.read_text():
            break
        await asyncio.sleep(0.05)
    pid = int(marker.read_text())
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the MCP server process outlived the cancelled start")


def test_doctor_starts_each_configured_server_and_reports_it(tmp_path: Path) -> None:
    from k2lsp.cli.doctor import FAIL, WARN, check_mcp

    (tmp_path / "k2lsp.toml").write_text(
        f"[mcp.servers.demo]\ncommand = {json.dumps(sys.executable)}\n"
        f"args = [{json.dumps(SERVER)}]\n"
        f'[mcp.servers.gone]\ncommand = "{tmp_path / "missing"}"\n'
    )
    settings = load_settings(tmp_path, trusted=True)
    demo, gone = check_mcp(settings, tmp_path)
    assert demo.status == WARN and "mcp__demo__lookup_release" in demo.detail
    assert "bad-schema" in demo.detail  # the skipped tool is named
    assert gone.status == FAIL and "did not start" in gone.detail and gone.fix
