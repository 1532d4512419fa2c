"""Configuration (initializationOptions, workspace/configuration) and the server's command line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from k2lsp.fake.server import FakeK2Server, Reply
from k2lsp.server.config import parse_config
from tests.lsp_fixtures import API_KEY, make_project, server_env, start_editor, stop_editor

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def fake() -> AsyncIterator[FakeK2Server]:
    srv = FakeK2Server([], models=["kimi-k2-thinking", "kimi-k2-thinking-turbo"])
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"maxSteps": -3}, "'maxSteps': max_steps: must be >= 1 (got -3); ignored"),
        ({"maxSteps": 2.5}, "'maxSteps': max_steps: must be a whole number (got 2.5)"),
        ({"sandbox": "vm"}, "must be one of 'auto', 'docker', 'bwrap' or 'none' (got 'vm')"),
        ({"preview": "yes"}, "'preview': preview: must be true or false (got 'yes')"),
        ({"approvals": "never"}, "must be one of 'ask' or 'policy' (got 'never')"),
        ({"allowCommands": "make"}, "allow_commands: must be a list (got 'make')"),
        ({"temperature": 7}, "temperature: must be <= 2 (got 7)"),
        ({"prices": {"input": -1}}, "prices.input: must be >= 0 (got -1)"),
        ({"bogus": 1}, "unknown setting 'bogus' ignored"),
        ({"maxStpes": 1}, "unknown setting 'maxStpes' ignored (did you mean 'max_steps'?)"),
        ("text", "must be an object"),
    ],
)
def test_bad_values_are_reported_and_defaults_kept(raw: Any, problem: str) -> None:
    config = parse_config({"k2lsp": raw} if isinstance(raw, dict) else raw)
    assert len(config.problems) == 1 and problem in config.problems[0]
    assert config.overrides == {} and config.options.preview is False


def test_good_values_map_to_settings_and_options() -> None:
    config = parse_config(
        {
            "k2lsp": {
                "maxSteps": 7,
                "budget_usd": 0.5,
                "allowCommands": ["make *"],
                "preview": True,
                "approvals": "policy",
                "stateDir": "/tmp/s",
                "model": "kimi-k2-thinking-turbo",
            }
        }
    )
    assert config.problems == []
    assert config.overrides["max_steps"] == 7 and config.overrides["budget_usd"] == 0.5
    assert config.overrides["allow_commands"] == ["make *"]
    assert str(config.overrides["state_dir"]) == "/tmp/s"
    assert config.options.preview and config.options.approvals == "policy"
    later = parse_config({"maxSteps": 9}, config)
    assert later.overrides["max_steps"] == 9 and later.overrides["budget_usd"] == 0.5


def test_a_bad_api_key_value_is_never_echoed() -> None:
    config = parse_config({"apiKey": ["sk-secret-value-123456789012345"]})
    assert "sk-secret" not in config.problems[0] and "***" in config.problems[0]


async def test_invalid_configuration_is_shown_and_the_server_still_works(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="ok", content="Hello."))
    ed = await start_editor(
        make_project(tmp_path / "proj"),
        fake.base_url,
        tmp_path / "home",
        init_options={"maxSteps": "many", "preview": 3},
        configuration={"sandbox": "vm", "model": "kimi-k2-thinking-turbo"},
    )
    try:
        await ed.wait_for(lambda: len(ed.client.messages) >= 3)
        shown = [m.message for m in ed.client.messages]
        assert any("max_steps: must be a whole number (got 'many')" in m for m in shown)
        assert any(
            "preview: must be true or false (got 3); ignored, using False" in m for m in shown
        )
        # the harness's initializationOptions set sandbox = "none": that value stays
        assert any("(got 'vm'); ignored, using 'none'" in m for m in shown), shown
        run_id = (await ed.command("k2lsp.ask", {"question": "hi?"}))["runId"]
        info = await ed.finished(run_id)
        assert info["outcome"] == "success"
        assert fake.requests[0]["model"] == "kimi-k2-thinking-turbo"  # the valid key applied
    finally:
        await stop_editor(ed)


async def test_missing_model_configuration_is_reported_without_a_run(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    ed = await start_editor(
        make_project(tmp_path / "proj"),
        fake.base_url,
        tmp_path / "home",
        init_options={"provider": "nowhere"},
    )
    try:
        # one JSON-RPC error names the problem; it is not repeated as a showMessage
        with pytest.raises(Exception, match="unknown provider 'nowhere'"):
            await ed.command("k2lsp.ask", {"question": "hi?"})
        assert not any("unknown provider" in m.message for m in ed.client.messages)
        assert fake.requests == [] and (await ed.command("k2lsp.status"))["runs"] == []
    finally:
        await stop_editor(ed)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "5"], "--port is for --tcp"),
        (["--tcp"], "--tcp needs --port N"),
        (["--stdio", "--tcp", "--port", "5"], "choose one of --stdio and --tcp"),
    ],
)
def test_bad_server_flags_exit_2_with_a_message(argv: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "k2lsp.server", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and message in proc.stderr


def _frame(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj).encode()
    return f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def _read_message(sock: socket.socket) -> dict[str, Any]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    while len(rest) < length:
        rest += sock.recv(4096)
    return json.loads(rest[:length])


def test_tcp_mode_serves_initialize(tmp_path: Path, unused_tcp_port: int) -> None:
    env = server_env("http://127.0.0.1:9/v1", tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "k2lsp", "--tcp", "--port", str(unused_tcp_port)],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", unused_tcp_port), timeout=30)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        with sock:
            sock.sendall(
                _frame(
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {
                            "processId": None,
                            "rootUri": tmp_path.as_uri(),
                            "capabilities": {},
                        },
                    }
                )
            )
            reply = _read_message(sock)
        caps = reply["result"]["capabilities"]
        assert reply["result"]["serverInfo"]["name"] == "k2lsp"
        assert "k2lsp.task" in caps["executeCommandProvider"]["commands"]
        assert caps["codeActionProvider"]["codeActionKinds"] == ["quickfix", "refactor.rewrite"]
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert API_KEY.encode() not in err


@pytest.mark.parametrize("argv", [[], ["--stdio"]])
def test_stdio_is_the_default_and_accepts_the_stdio_flag(tmp_path: Path, argv: list[str]) -> None:
    env = server_env("http://127.0.0.1:9/v1", tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "k2lsp", *argv], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(_frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}}}))  # fmt: skip
        proc.stdin.flush()
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += proc.stdout.read(1)
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        reply = json.loads(proc.stdout.read(length))
        assert reply["id"] == 1 and reply["result"]["serverInfo"]["name"] == "k2lsp"
    finally:
        proc.kill()
        proc.communicate(timeout=30)
