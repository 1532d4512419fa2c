"""Setup checks as the editors run them: the `k2lsp.checkSetup` server command (behind
`:checkhealth k2lsp` and VS Code's "K2: Check setup") and `k2lsp doctor --setup --json` call
the host's real `GET /models` with the configured base URL and key, probe the sandbox, and
report each problem in one line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from k2lsp.fake.server import FakeK2Server
from tests.lsp_fixtures import make_project, start_editor, stop_editor

pytestmark = pytest.mark.timeout(180)
KEY = "sk-moonshot-health-0123456789abcdef"
MODEL = "kimi-k2-thinking"


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def _cases(base: str) -> dict[str, dict[str, str | None]]:
    """Environments: the key only in MOONSHOT_API_KEY (the provider's own variable), a wrong
    key, no key at all, and a base URL nothing listens on."""
    moonshot = {
        "K2LSP_API_KEY": None,
        "K2LSP_PROVIDER": "moonshot",
        "K2LSP_BASE_URL": base,
        "K2LSP_MODEL": MODEL,
    }
    return {
        "moonshot key": {**moonshot, "MOONSHOT_API_KEY": KEY},
        "wrong key": {**moonshot, "MOONSHOT_API_KEY": "sk-wrong-0123456789abcdefghij"},
        "no key": {**moonshot, "MOONSHOT_API_KEY": None},
        "dead host": {**moonshot, "MOONSHOT_API_KEY": KEY, "K2LSP_BASE_URL": _dead_url()},
    }


def _expect(case: str, result: dict[str, Any], base: str, env: dict[str, str | None]) -> None:
    checks = {c["name"]: c for c in result["checks"]}
    assert {"API key", "model", "sandbox"} <= set(checks)
    assert all("\n" not in p for p in result["problems"])  # one line each
    text = json.dumps(result)
    assert KEY not in text and "sk-wrong" not in text  # the key is never shown
    if case == "moonshot key":
        assert (
            checks["API key"]["status"] == "ok"
            and "MOONSHOT_API_KEY" in checks["API key"]["detail"]
        )
        assert checks["model"]["status"] in ("ok", "warn") and base in checks["model"]["detail"]
        assert not any("API key" in p or p.startswith("model") for p in result["problems"])
    elif case == "wrong key":
        assert checks["model"]["status"] == "FAIL"
        line = next(p for p in result["problems"] if p.startswith("model"))
        assert f"GET {base}/models" in line and "MOONSHOT_API_KEY" in line and "401" in line
    elif case == "no key":
        assert checks["API key"]["status"] == "FAIL" and not result["ok"]
        assert any("MOONSHOT_API_KEY" in p for p in result["problems"] if p.startswith("API key"))
    else:
        url = str(env["K2LSP_BASE_URL"])
        assert checks["model"]["status"] == "FAIL"
        assert any(url in p for p in result["problems"] if p.startswith("model"))


@pytest.mark.parametrize("case", ["moonshot key", "wrong key", "no key", "dead host"])
async def test_check_setup_command_uses_the_servers_settings(tmp_path: Path, case: str) -> None:
    root = make_project(tmp_path / "proj")
    with FakeK2Server([], models=[MODEL], api_key=KEY) as srv:
        env = _cases(srv.base_url)[case]
        ed = await start_editor(root, srv.base_url, tmp_path / "home", stream=False, env=env)
        try:
            result = await ed.command("k2lsp.checkSetup", {})
            bare = await ed.command("k2lsp.checkSetup")  # a palette call shows it too
        finally:
            await stop_editor(ed)
        calls, base = srv.model_list_calls, srv.base_url
    _expect(case, result, base, env)
    assert bare == result
    assert any(m.message.startswith("K2 setup: ") for m in ed.client.messages)
    if case == "moonshot key":
        assert calls >= 2  # a real GET /models each time (the wrong key got a real 401)


@pytest.mark.parametrize("case", ["moonshot key", "wrong key"])
def test_doctor_setup_json_matches(tmp_path: Path, case: str) -> None:
    root = make_project(tmp_path / "proj")
    with FakeK2Server([], models=[MODEL], api_key=KEY) as srv:
        env_change = _cases(srv.base_url)[case]
        env = {k: v for k, v in os.environ.items() if not k.startswith("K2LSP_")}
        env.update({"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")})
        for k, v in env_change.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        proc = subprocess.run(
            [sys.executable, "-m", "k2lsp", "doctor", "--setup", "--json", "--repo", str(root)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        base = srv.base_url
    result = json.loads(proc.stdout)
    _expect(case, result, base, env_change)
    assert proc.returncode == (0 if result["ok"] else 1)
