"""Headless runs get MCP tools from the same configuration: `[mcp.servers.NAME]` in the
repository's k2lsp.toml (streamable HTTP here, a real server process), only when trusted."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from k2lsp.fake.server import FakeK2Server, Reply
from tests.acp_helpers import MCP_SERVER
from tests.git_helpers import make_repo
from tests.lsp_fixtures import server_env

pytestmark = pytest.mark.timeout(180)
CALL = ("mcp__demo__lookup_release", {"package": "requests"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_mcp() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, MCP_SERVER, "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("the MCP HTTP server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


def _run(
    tmp_path: Path, fake: FakeK2Server, url: str, *flags: str
) -> subprocess.CompletedProcess[str]:
    repo = make_repo(
        tmp_path / "proj",
        {
            "app.py": "import requests\n",
            "k2lsp.toml": f'[mcp.servers.demo]\nurl = "{url}"\nallow_tools = ["lookup_*"]\n',
        },
    )
    env = server_env(fake.base_url, tmp_path / "home")
    args = ["--task", "Which requests release is current?", "--repo", str(repo)]
    args += ["--mode", "ask", "--sandbox", "none", "--json", *flags]
    return subprocess.run(
        [sys.executable, "-m", "k2lsp", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_trusted_repository_config_gives_a_headless_run_its_mcp_tools(
    tmp_path: Path, fake: FakeK2Server, http_mcp: str
) -> None:
    fake.add(
        Reply(reasoning="Ask the catalogue.", tool_calls=[CALL]),
        Reply(reasoning="Got it.", content="requests 2.32.3 is current."),
    )
    proc = _run(tmp_path, fake, http_mcp, "--trust-repo")
    assert proc.returncode == 0, proc.stderr
    offered = [t["function"]["name"] for t in fake.requests[0]["tools"]]
    assert "mcp__demo__lookup_release" in offered
    tools = [m for m in fake.requests[1]["messages"] if m["role"] == "tool"]
    assert "requests latest release: 2.32.3" in str(tools[-1]["content"])
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    results = [e for e in events if e["type"] == "tool_result"]
    assert results and results[0]["ok"] and results[0]["name"] == CALL[0]


def test_untrusted_repository_config_starts_no_mcp_server(
    tmp_path: Path, fake: FakeK2Server, http_mcp: str
) -> None:
    fake.add(Reply(reasoning="No catalogue here.", content="I cannot tell."))
    proc = _run(tmp_path, fake, http_mcp)
    assert proc.returncode == 0, proc.stderr
    offered = [t["function"]["name"] for t in fake.requests[0]["tools"]]
    assert not any(name.startswith("mcp__") for name in offered)
    assert "mcp" in proc.stderr and "k2lsp trust" in proc.stderr


async def test_the_language_server_gets_mcp_tools_from_the_user_config_and_asks(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    from tests.lsp_fixtures import make_project, start_editor, stop_editor

    home = tmp_path / "home"
    user = home / "config" / "k2lsp" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(
        f"[mcp.servers.demo]\ncommand = {json.dumps(sys.executable)}\n"
        f"args = [{json.dumps(MCP_SERVER)}]\n"
    )
    fake.add(
        Reply(reasoning="Ask the catalogue.", tool_calls=[CALL]),
        Reply(reasoning="Got it.", content="requests 2.32.3 is current."),
    )
    ed = await start_editor(make_project(tmp_path / "proj"), fake.base_url, home)
    ed.approvals = ["Allow once"]
    try:
        run_id = (await ed.command("k2lsp.ask", {"question": "which requests is current?"}))[
            "runId"
        ]
        assert (await ed.finished(run_id))["outcome"] == "success"
    finally:
        await stop_editor(ed)
    assert len(ed.questions) == 1 and "mcp__demo__lookup_release" in ed.questions[0].message
    tools = [m for m in fake.requests[1]["messages"] if m["role"] == "tool"]
    assert "requests latest release: 2.32.3" in str(tools[-1]["content"])
