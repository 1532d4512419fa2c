"""The Neovim plugin as users install it, in headless Neovim against the real server:
`api_key_cmd` (once, asynchronously, a missing program reported without a Lua error),
`vim.lsp.enable('k2lsp')` through lsp/k2lsp.lua, `:help k2lsp` from doc/ with generated tags,
`:checkhealth k2lsp` running the server's setup checks, and "K2: Fix …" for a diagnostic of
another source."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from k2lsp.fake.server import FakeK2Server
from tests import test_editor_nvim as nvim_tests
from tests.editor_helpers import CALC, fix_script
from tests.test_editor_nvim import MODEL, PLUGIN, run_nvim

pytestmark = pytest.mark.editor
KEY = "sk-from-key-cmd-0123456789abcdef"
# the fixtures of tests/test_editor_nvim.py: a usable Neovim (or skip) and the calc project
nvim = nvim_tests.nvim
project = nvim_tests.project


def _no_lua_errors(data: dict[str, object]) -> None:
    assert data["errors"] == [], data["errors"]
    stderr = str(data["stderr"])
    assert "E5108" not in stderr and "stack traceback" not in stderr, stderr[-2000:]


def test_missing_api_key_cmd_is_reported_once_and_the_server_starts_without_a_key(
    nvim: str, project: Path
) -> None:
    with FakeK2Server([], models=[MODEL]) as srv:
        data = run_nvim(
            nvim,
            "api_key_cmd.lua",
            project,
            srv.base_url,
            {
                "K2_KEY_CMD": "missing",
                "K2LSP_API_KEY": "",
                "K2LSP_PROVIDER": "moonshot",
                "MOONSHOT_API_KEY": "",
            },
        )
    _no_lua_errors(data)
    assert data["marks"]["client_ready"] and data["clients"] == 1 and data["attached"] == 1
    assert data["key_state"] == "failed"
    errors = [n["msg"] for n in data["notes"] if "api_key_cmd" in n["msg"]]
    assert len(errors) == 1, data["notes"]  # once, although three buffers were opened
    assert "/nonexistent/bin/pass" in errors[0] and "without a key" in errors[0]
    assert "ENOENT" in errors[0] and ".lua:" not in errors[0]
    problems = data["setup"]["problems"]
    assert any(p.startswith("API key: no API key") for p in problems), problems
    assert data["marks"]["no_key_said"], data["notes"]
    said = [n["msg"] for n in data["notes"] if "no API key" in n["msg"]]
    assert len(said) == 1, said  # once: the server's message, not repeated by the plugin
    health = "\n".join(data["health"])
    assert "ERROR api_key_cmd could not run /nonexistent/bin/pass" in health, health
    assert re.search(r"ERROR API key: no API key", health), health


def test_api_key_cmd_runs_once_asynchronously_and_the_key_reaches_the_server(
    nvim: str, project: Path, tmp_path: Path
) -> None:
    count = tmp_path / "count"
    with FakeK2Server([], models=[MODEL], api_key=KEY) as srv:
        data = run_nvim(
            nvim,
            "api_key_cmd.lua",
            project,
            srv.base_url,
            {"K2_KEY_CMD": "slow", "K2_KEY_COUNT": str(count), "K2LSP_API_KEY": ""},
        )
        models_called = srv.model_list_calls
    _no_lua_errors(data)
    assert data["state_after_setup"] == "running"  # setup{} did not wait for the command
    assert data["key_state"] == "done" and data["clients"] == 1
    assert count.read_text().splitlines() == ["run"]  # once for three buffers
    checks = {c["name"]: c for c in data["setup"]["checks"]}
    assert checks["API key"]["status"] == "ok" and "K2LSP_API_KEY" in checks["API key"]["detail"]
    # the fake host accepts only this key: GET /models succeeded with it
    assert checks["model"]["status"] in ("ok", "warn"), checks["model"]
    assert models_called >= 1
    health = "\n".join(data["health"])
    assert "OK api_key_cmd gave a key" in health and KEY not in health, health
    assert re.search(r"OK model: kimi-k2-thinking on openai-compatible \(http://127", health), (
        health
    )


def test_checkhealth_counts_the_providers_own_key_variable_without_a_client(
    nvim: str, project: Path
) -> None:
    """No running client: :checkhealth asks `k2lsp doctor --setup --json` (MOONSHOT_API_KEY
    counts, the base URL is the configured one)."""
    key = "sk-moonshot-env-0123456789abcdef"
    with FakeK2Server([], models=[MODEL], api_key=key) as srv:
        env = {
            "K2LSP_API_KEY": "",
            "K2LSP_PROVIDER": "moonshot",
            "MOONSHOT_API_KEY": key,
            "K2_HEALTH_ONLY": "1",
        }
        data = run_nvim(nvim, "health_only.lua", project, srv.base_url, env)
        base = srv.base_url
    _no_lua_errors(data)
    health = "\n".join(data["health"])
    assert "checked by `k2lsp doctor --setup`" in health, health
    assert "OK API key: set (from $MOONSHOT_API_KEY)" in health, health
    assert f"OK model: kimi-k2-thinking on moonshot ({base})" in health, health
    assert "no API key" not in health and key not in health


def test_foreign_diagnostic_gets_the_preferred_k2_fix(nvim: str, project: Path) -> None:
    script = fix_script()
    with FakeK2Server(script, models=[MODEL]) as srv:
        data = run_nvim(nvim, "foreign_diagnostic.lua", project, srv.base_url)
        first = srv.requests[0] if srv.requests else {}
    _no_lua_errors(data)
    fixes = [a for a in data["actions"] if a["title"].startswith("K2: Fix W999")]
    assert fixes and fixes[0]["preferred"], data["actions"]
    assert data["calc_buffer"] == ["def add(a, b):", "    return a + b"], data["calc_buffer"]
    task = str(first.get("messages", ""))
    assert "W999 add() subtracts its arguments" in task and "fakelint" in task
    assert (project / "calc.py").read_text() == CALC  # the buffer, not the disk, got it


def test_vim_lsp_enable_uses_the_plugins_lsp_config(nvim: str, project: Path) -> None:
    bindir = str(Path(sys.executable).parent)
    with FakeK2Server([], models=[MODEL]) as srv:
        env = {"PATH": f"{bindir}:{__import__('os').environ.get('PATH', '')}"}
        data = run_nvim(nvim, "lsp_enable.lua", project, srv.base_url, env)
    _no_lua_errors(data)
    assert data["marks"]["client_ready"], data["stderr"][-2000:]
    assert data["root_dir"] == str(project) and data["has_stream_handler"]
    assert data["status"]["active"] == 0


def test_help_tags_generate_and_every_link_resolves(nvim: str, tmp_path: Path) -> None:
    doc = tmp_path / "doc"
    shutil.copytree(PLUGIN / "doc", doc)
    out = tmp_path / "help.txt"
    cmd = [
        nvim, "--headless", "-u", "NONE", "-i", "NONE",
        "--cmd", f"set rtp^={tmp_path}",
        "-c", f"helptags {doc}",
        "-c", "help k2lsp",
        "-c", f"call writefile(getline(1, '$'), '{out}')",
        "-c", "help k2lsp-checkhealth",
        "-c", f"call writefile([expand('%:t'), getline('.')], '{out}.2')",
        "-c", "qa!",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert (doc / "tags").is_file(), proc.stderr
    tags = {line.split("\t")[0] for line in (doc / "tags").read_text().splitlines()}
    text = (doc / "k2lsp.txt").read_text()
    links = set(re.findall(r"\|(k2lsp[\w.:-]*)\|", text))
    assert links and links <= tags, sorted(links - tags)
    assert {"k2lsp", "k2lsp-install", "k2lsp-checkhealth", ":K2Ask"} <= tags
    assert "k2lsp.txt" in out.read_text()
    assert (tmp_path / "help.txt.2").read_text().splitlines()[0] == "k2lsp.txt"
