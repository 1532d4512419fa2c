"""The `k2lsp` command line as a subprocess against the fake K2 server (real HTTP, real git)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY, make_k2_env

from k2lsp.demo.demo import SESSION, make_repo
from k2lsp.fake.script import Fault, Reply, load_script
from k2lsp.fake.server import FakeK2Server

MODEL = "kimi-k2-thinking"
K2LSP = [sys.executable, "-m", "k2lsp"]
TEST_COMMAND = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {sys.executable} -m pytest -q -p no:cacheprovider"


def session() -> list[Any]:
    """The demo's recorded session without streaming delays."""
    return load_script([{**o, "delay_s": 0.0} for o in json.loads(SESSION.read_text())])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed git repository with one failing test."""
    (tmp_path / "src").mkdir()
    return make_repo(tmp_path / "src")


def env_for(tmp_path: Path, base_url: str, **extra: str) -> dict[str, str]:
    """Env pointing at the fake server, with a private config (test command) and state dir."""
    env = make_k2_env(base_url)
    config = tmp_path / "config" / "k2lsp" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"test_command = {json.dumps(TEST_COMMAND)}\n")
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "xdg-state"),
        K2LSP_STATE_DIR=str(tmp_path / "xdg-state" / "k2lsp"),
    )
    env.pop("CI", None)
    env.update(extra)
    return env


def k2lsp(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion."""
    return subprocess.run([*K2LSP, *args], env=env, capture_output=True, text=True, timeout=timeout)


def git_status(repo: Path) -> str:
    """`git status --porcelain` of `repo`."""
    return subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def test_headless_run_fixes_the_failing_test(repo: Path, tmp_path: Path) -> None:
    with FakeK2Server(session(), models=[MODEL]) as srv:
        proc = k2lsp(
            ["--task", "Fix the failing test.", "--repo", str(repo), "--sandbox", "none", "--json"],
            env_for(tmp_path, srv.base_url),
        )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["outcome"] == "success" and events[-1]["exit_code"] == 0
    assert "return len(text.split())" in (repo / "textstats/stats.py").read_text()
    assert git_status(repo).strip() == "M textstats/stats.py"
    assert TEST_KEY not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_terminal_output_and_patch_delivery(repo: Path, tmp_path: Path) -> None:
    with FakeK2Server(session(), models=[MODEL]) as srv:
        proc = k2lsp(
            [
                "--task",
                "Fix the failing test.",
                "--repo",
                str(repo),
                "--sandbox",
                "none",
                "--output",
                "patch",
            ],
            env_for(tmp_path, srv.base_url),
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("diff --git a/textstats/stats.py")  # only the patch on stdout
    assert "+    return len(text.split())" in proc.stdout
    assert "→ edit_file path=textstats/stats.py" in proc.stderr
    assert "\x1b[" not in proc.stderr  # no colours when not on a terminal
    assert "success (exit 0)" in proc.stderr
    assert git_status(repo) == ""  # patch mode leaves the tree alone
    assert TEST_KEY not in proc.stdout + proc.stderr


def test_budget_exhausted_exits_4(repo: Path, tmp_path: Path) -> None:
    with FakeK2Server(session(), models=[MODEL]) as srv:
        proc = k2lsp(
            ["--task", "Fix it.", "--repo", str(repo), "--sandbox", "none", "--max-steps", "2"],
            env_for(tmp_path, srv.base_url),
        )
    assert proc.returncode == 4
    assert "step budget used up" in proc.stderr and "--max-steps" in proc.stderr
    assert git_status(repo) == ""


def test_quota_exhausted_exits_3_within_seconds(repo: Path, tmp_path: Path) -> None:
    fault = Fault.http(429, "exceeded_current_quota_error", "Your account is suspended: no balance")
    with FakeK2Server([fault], models=[MODEL]) as srv:
        start = time.monotonic()
        proc = k2lsp(
            ["--task", "Fix it.", "--repo", str(repo), "--sandbox", "none", "--json"],
            env_for(tmp_path, srv.base_url),
        )
        elapsed = time.monotonic() - start
        assert len(srv.requests) == 1  # no retries
    assert proc.returncode == 3
    assert json.loads(proc.stdout.splitlines()[-1])["outcome"] == "provider_error"
    assert elapsed < 60


def test_sigint_mid_stream_exits_130_and_applies_nothing(repo: Path, tmp_path: Path) -> None:
    edit = Reply(
        reasoning="fix",
        tool_calls=[
            (
                "edit_file",
                {
                    "path": "textstats/stats.py",
                    "old_text": 'text.split(" ")',
                    "new_text": "text.split()",
                },
            )
        ],
    )
    hold = Reply(reasoning="now let me think for a very long time", hold=True)
    with FakeK2Server([edit, hold], models=[MODEL]) as srv:
        proc = subprocess.Popen(
            [*K2LSP, "--task", "Fix it.", "--repo", str(repo), "--sandbox", "none", "--json"],
            env=env_for(tmp_path, srv.base_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert srv.wait_held(60)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    events = [json.loads(line) for line in out.splitlines()]
    assert any(e["type"] == "edit" for e in events)  # the edit happened in the run copy...
    assert events[-1]["outcome"] == "cancelled"
    assert git_status(repo) == ""  # ...and nothing reached the user's tree
    assert not list(
        (tmp_path / "xdg-state" / "k2lsp" / "runs").glob("*/textstats")
    )  # run copy removed


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("unknown_provider", "unknown provider"),
        ("missing_key", "no API key"),
        ("missing_folder", "does not exist"),
        ("empty_task", "nothing to do"),
        ("bad_number", "--max-steps"),
        ("patch_file_without_patch", "--patch-file only works with --output patch"),
    ],
)
def test_bad_input_exits_2_with_a_readable_message(
    repo: Path, tmp_path: Path, case: str, needle: str
) -> None:
    env = env_for(tmp_path, "http://127.0.0.1:9/v1")
    args = ["--task", "Fix it.", "--repo", str(repo), "--sandbox", "none"]
    if case == "unknown_provider":
        env["K2LSP_PROVIDER"] = "no-such-host"
    elif case == "missing_key":
        env.update(K2LSP_PROVIDER="moonshot", K2LSP_BASE_URL="")
        for name in ("K2LSP_API_KEY", "MOONSHOT_API_KEY"):
            env.pop(name, None)
    elif case == "missing_folder":
        args[3] = str(tmp_path / "nope")
    elif case == "empty_task":
        args[1] = "  "
    elif case == "bad_number":
        args += ["--max-steps", "zero"]
    else:
        args += ["--patch-file", str(tmp_path / "x.patch"), "--output", "apply"]
    proc = k2lsp(args, env)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr and TEST_KEY not in proc.stderr


def test_tool_command_prints_what_the_model_sees(repo: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path, "http://127.0.0.1:9/v1")
    ok = k2lsp(
        ["tool", "read_file", "--json", '{"path": "textstats/stats.py"}', "--repo", str(repo)], env
    )
    assert ok.returncode == 0 and "def word_count" in ok.stdout
    missing = k2lsp(
        ["tool", "read_file", "--json", '{"path": "nope.py"}', "--repo", str(repo)], env
    )
    assert missing.returncode == 1 and "nope.py" in missing.stdout
    bad = k2lsp(["tool", "read_file", "--json", "{path", "--repo", str(repo)], env)
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr
    unknown = k2lsp(["tool", "no_such_tool", "--repo", str(repo)], env)
    assert unknown.returncode == 2 and "read_file" in unknown.stderr


def test_models_lists_ids_and_context(tmp_path: Path) -> None:
    models = [{"id": "kimi-k2-thinking", "context_length": 262144}, "kimi-k2-thinking-turbo"]
    with FakeK2Server([], models=models) as srv:
        proc = k2lsp(["models"], env_for(tmp_path, srv.base_url))
    assert proc.returncode == 0, proc.stderr
    assert "kimi-k2-thinking" in proc.stdout and "262,144" in proc.stdout
    assert "kimi-k2-thinking-turbo" in proc.stdout


def test_help_and_version_import_nothing_heavy(tmp_path: Path) -> None:
    env = dict(os.environ)
    proc = k2lsp(["--help"], env)
    assert proc.returncode == 0 and "--task" in proc.stdout and "demo" in proc.stdout
    version = k2lsp(["--version"], env)
    assert version.returncode == 0 and version.stdout.startswith("k2lsp ")
    probe = (
        "import sys, contextlib, io\nimport k2lsp.cli.main as c\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: c.main(['--help'])\n    except SystemExit: pass\n"
        "heavy = ('openai', 'pygls', 'lsprotocol', 'git', 'tree_sitter', 'docker', 'pydantic')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ci_defaults_to_a_branch_and_leaves_the_tree_alone(repo: Path, tmp_path: Path) -> None:
    with FakeK2Server(session(), models=[MODEL]) as srv:
        proc = k2lsp(
            ["--task", "Fix the failing test.", "--repo", str(repo), "--sandbox", "none"],
            env_for(tmp_path, srv.base_url, CI="true"),
        )
    assert proc.returncode == 0, proc.stderr
    assert git_status(repo) == ""
    branches = subprocess.run(
        ["git", "branch", "--list", "k2lsp/*"], cwd=repo, capture_output=True, text=True
    ).stdout.split()
    assert len(branches) == 1
    shown = subprocess.run(
        ["git", "show", f"{branches[0]}:textstats/stats.py"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "return len(text.split())" in shown
    assert "on branch k2lsp/" in proc.stderr


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["doctor", "--help"], "usage: k2lsp doctor"),
        (["gc", "--help"], "usage: k2lsp gc"),
        (["undo", "--help"], "usage: k2lsp undo"),
        (["sandbox", "--help"], "usage: k2lsp sandbox"),
        (["tool", "--help"], "usage: k2lsp tool"),
        (["models", "--help"], "usage: k2lsp models"),
        (["demo", "--help"], "usage: k2lsp demo"),
    ],
)
def test_subcommands_are_dispatched(argv: list[str], usage: str) -> None:
    proc = k2lsp(argv, dict(os.environ), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(usage)


def test_no_arguments_start_the_language_server_on_stdio() -> None:
    proc = subprocess.run([*K2LSP], stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert proc.returncode == 0  # the server saw end of input and stopped
    assert b"Traceback" not in proc.stderr
