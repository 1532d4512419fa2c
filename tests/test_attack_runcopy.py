"""Issue 10, item 1: git metadata planted in the run copy never runs anything on the host.

The run copy holds no `.git`; k2lsp's own git dir lives beside it. These tests plant every
kind of hostile git metadata (a `.git` folder with `core.fsmonitor`, hooks, a pager, filters,
`diff.external`, an include; a `.git` file pointing at such a folder; a nested repository; a
submodule's folder turned into a repository) the way a model could: directly (as a process in
the sandbox would), through the file tools, and through a `conftest.py` that `run_tests`
executes in real bwrap and real docker. Then every host-side git operation runs (status, diff,
log, show, the test-file review, the end-of-run snapshot, branch and patch delivery, cleanup)
and the marker the hostile command would create never appears; a `git` shim on PATH proves
every run-copy git call names k2lsp's git dir and that no git call sees the API key.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from attack_helpers import calls, install_git_shim, plant, planting_code
from conftest import TEST_KEY
from git_helpers import git, make_repo

from k2lsp import gitcmd
from k2lsp.agent.events import Outcome
from k2lsp.code.files import list_source_files
from k2lsp.git import deliver
from k2lsp.guards_tests import diff_now, review_run_copy
from k2lsp.model.fake_script import Reply
from k2lsp.model.fake_server import FakeK2Server
from k2lsp.redact import register_secret
from k2lsp.runcopy import RunCopy
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext
from k2lsp.workspace import Workspace

REPO_FILES = {
    "app.py": "def add(a, b):\n    return a + b\n",
    "test_app.py": "from app import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
}


def _repo_with_submodule(path: Path) -> Path:
    repo = make_repo(path, REPO_FILES)
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{head},lib")
    git(repo, "commit", "-q", "-m", "a submodule")
    return repo


def _user_git_state(repo: Path) -> dict[str, Any]:
    gd = repo / ".git"
    hooks = sorted(p.name for p in (gd / "hooks").iterdir()) if (gd / "hooks").is_dir() else []
    return {"config": (gd / "config").read_bytes(), "hooks": hooks}


def _tool(ctx: ToolContext, name: str, args: dict[str, Any]) -> Any:
    return asyncio.run(build_registry().execute(name, args, ctx))


def test_host_git_never_runs_what_the_sandbox_plants_in_the_run_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo_with_submodule(tmp_path / "repo")
    before = _user_git_state(repo)
    marker, log = tmp_path / "pwned", tmp_path / "git-calls.log"
    monkeypatch.setenv("PATH", install_git_shim(tmp_path / "shim", log))
    monkeypatch.setenv("K2LSP_API_KEY", TEST_KEY)
    monkeypatch.setenv("MOONSHOT_API_KEY", TEST_KEY)
    register_secret(TEST_KEY)
    rc = RunCopy.create(repo, "attack", state_dir=tmp_path / "state")
    try:
        assert not (rc.root / ".git").exists()  # the copy carries no git link at all
        (rc.root / "app.py").write_text("def add(a, b):\n    return b + a\n")
        plant(rc.root, marker)
        ctx = ToolContext(rc.workspace())
        results = {
            name: _tool(ctx, name, args)
            for name, args in [
                ("git_status", {}),
                ("git_diff", {}),
                ("git_log", {"n": 3}),
                ("git_show", {"rev": "HEAD", "path": "app.py"}),
                ("list_files", {}),
                ("repo_map", {}),
            ]
        }
        assert results["git_status"].ok and "app.py" in results["git_status"].text
        assert results["git_diff"].ok and "return b + a" in results["git_diff"].text
        assert results["git_log"].ok and "a submodule" in results["git_log"].text
        assert results["git_show"].ok and "return a + b" in results["git_show"].text
        review_run_copy(rc.root)
        diff_now(rc.root)
        Workspace(rc.root).ignored(["app.py", "nested/n.txt"])
        list_source_files(rc.root)
        changes = rc.changes()
        assert "app.py" in changes.paths()
        assert not any(".git" in p.split("/") for p in changes.paths())
        patch = deliver(rc, changes, "patch", task="attack")
        assert patch.outcome is Outcome.SUCCESS and "return b + a" in patch.patch
        branch = deliver(rc, changes, "branch", task="attack")
        assert branch.outcome is Outcome.SUCCESS, branch.message
        assert "return b + a" in git(repo, "show", f"{rc.branch}:app.py")
    finally:
        rc.cleanup(keep_branch=True)
    assert not marker.exists(), "a command planted in the run copy ran on the host"
    assert _user_git_state(repo) == before
    git(repo, "fsck", "--connectivity-only", "--no-progress")  # delivered objects all there
    recorded = [c for c in calls(log) if "arg=init.defaultBranch=main" not in c]  # not ours
    own = [c for c in recorded if f"arg=--git-dir={rc.git_dir}" in c]
    assert own, "run-copy git calls go through the shim"
    for call in recorded:
        assert TEST_KEY not in call, "the API key reached a git process"
        cwd = call.split("cwd=", 1)[1].split("\n", 1)[0]
        if Path(cwd).is_relative_to(rc.run_dir / "copy"):
            assert call in own, f"git ran inside the run copy without k2lsp's git dir:\n{call}"
    assert all("GIT_CONFIG_NOSYSTEM=1" in c and "GIT_CONFIG_GLOBAL=/dev/null" in c for c in own)


def test_a_folder_inside_a_run_copy_always_maps_to_its_own_git_dir(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", REPO_FILES)
    rc = RunCopy.create(repo, "map", state_dir=tmp_path / "state")
    try:
        fake = rc.root / "x"  # a fake run layout inside the copy is never taken
        (fake / "copy" / "y").mkdir(parents=True)
        (fake / "git").mkdir()
        (fake / "run.json").write_text("{}")
        own = gitcmd.run_copy_git(fake / "copy" / "y")
        assert own is not None and own.git_dir == rc.git_dir and own.work_tree == rc.worktree
        with pytest.raises(gitcmd.GitError, match="refusing"):
            gitcmd.run(rc.root, "-C", str(repo), "status")
        env = own.env({"GIT_INDEX_FILE": "/x", "MOONSHOT_API_KEY": TEST_KEY})
        assert TEST_KEY not in json.dumps(env) and env["GIT_INDEX_FILE"] == "/x"
    finally:
        rc.cleanup()


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("delete_file", {"path": ".git"}),
        ("create_file", {"path": ".git/config", "content": "[core]\n\tfsmonitor = touch pwned\n"}),
        ("create_file", {"path": ".GIT/config", "content": "[core]\n"}),
        ("create_file", {"path": "sub/.Git/config", "content": "[core]\n"}),
        ("create_file", {"path": ".git", "content": "gitdir: /tmp\n"}),
        ("create_file", {"path": "pkg/.git", "content": "gitdir: /tmp\n"}),
        ("create_file", {"path": ".git./hooks/pre-commit", "content": "touch pwned\n"}),
        ("edit_file", {"path": ".git/HEAD", "old_text": "ref", "new_text": "x"}),
        ("read_file", {"path": ".git/config"}),
        ("list_files", {"path": ".git"}),
        ("search", {"pattern": "core", "path": ".git"}),
        ("replace_symbol", {"path": ".git/x.py", "symbol": "f", "code": "def f():\n    pass\n"}),
        (
            "apply_patch",
            {
                "patch": "--- /dev/null\n+++ b/.git/hooks/post-checkout\n@@ -0,0 +1 @@\n"
                "+touch pwned\n"
            },
        ),
    ],
)
def test_file_tools_refuse_git_metadata(tmp_path: Path, name: str, args: dict[str, Any]) -> None:
    repo = make_repo(tmp_path / "repo", REPO_FILES)
    (repo / ".git" / "x.py").write_text("def f():\n    return 1\n")
    before = {p: p.read_bytes() for p in (repo / ".git").rglob("*") if p.is_file()}
    ctx = ToolContext(Workspace(repo))
    result = _tool(ctx, name, args)
    assert not result.ok and ".git" in result.text, result.text
    after = {p: p.read_bytes() for p in (repo / ".git").rglob("*") if p.is_file()}
    assert after == before and not (repo / "pwned").exists()
    assert not any(p.name.lower().startswith(".git.") for p in repo.iterdir())


# ---- the whole product: the CLI, the scripted model, real sandboxes -------------------------
K2LSP = [sys.executable, "-m", "k2lsp"]


def _env(tmp_path: Path, base_url: str, path: str, test_command: str) -> dict[str, str]:
    from conftest import make_k2_env

    env = make_k2_env(base_url)
    config = tmp_path / "config" / "k2lsp" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"test_command = {json.dumps(test_command)}\n")
    env.update(
        PATH=path,
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        K2LSP_STATE_DIR=str(tmp_path / "state"),
        MOONSHOT_API_KEY=TEST_KEY,
    )
    env.pop("CI", None)
    return env


def _script(conftest: str) -> list[Reply]:
    hostile_tools = [
        ("delete_file", {"path": ".git"}),
        ("create_file", {"path": ".git/config", "content": "[core]\n\tfsmonitor = touch x\n"}),
        ("create_file", {"path": "conftest.py", "content": conftest}),
    ]
    host_git = [
        ("run_tests", {}),
        ("git_status", {}),
        ("git_diff", {}),
        ("git_log", {"n": 2}),
        ("git_show", {"rev": "HEAD", "path": "app.py"}),
        ("list_files", {}),
        ("edit_file", {"path": "app.py", "old_text": "a + b", "new_text": "b + a"}),
        ("run_tests", {}),
    ]
    return [
        Reply(reasoning="plant", tool_calls=hostile_tools),
        Reply(reasoning="now make the host run git", tool_calls=host_git),
        Reply(content="Done."),
    ]


def _sandbox_or_skip(kind: str) -> str:
    if kind == "bwrap":
        from k2lsp import sandbox_bwrap

        why = sandbox_bwrap.problem()
        if why:
            pytest.skip(f"bwrap unavailable: {why}")
        return f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {sys.executable} -m pytest -q -p no:cacheprovider"
    from k2lsp import sandbox_docker
    from k2lsp.sandbox_image import DEFAULT_IMAGE, ensure_image

    why = sandbox_docker.problem(DEFAULT_IMAGE)
    if why and "missing" in why:
        ensure_image(DEFAULT_IMAGE)
        sandbox_docker.problem.cache_clear()
        why = sandbox_docker.problem(DEFAULT_IMAGE)
    if why:
        pytest.skip(f"docker unavailable: {why}")
    return "python3 -m pytest -q -p no:cacheprovider"


@pytest.mark.parametrize("kind", ["bwrap", "docker"])
def test_conftest_run_in_the_sandbox_cannot_make_host_git_run_code(
    tmp_path: Path, kind: str
) -> None:
    test_command = _sandbox_or_skip(kind)
    repo = _repo_with_submodule(tmp_path / "repo")
    before = _user_git_state(repo)
    marker, log = tmp_path / "pwned", tmp_path / "git-calls.log"
    path = install_git_shim(tmp_path / "shim", log)
    conftest = planting_code(marker) + "\n"
    with FakeK2Server(_script(conftest), models=["kimi-k2-thinking"]) as srv:
        argv = ["--task", "attack", "--repo", str(repo), "--sandbox", kind]
        proc = subprocess.run(
            [*K2LSP, *argv, "--output", "branch", "--json"],
            env=_env(tmp_path, srv.base_url, path, test_command),
            capture_output=True,
            text=True,
            timeout=600,
        )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    results = {e["id"]: e for e in events if e["type"] == "tool_result"}
    by_name = [(e["name"], results[e["id"]]) for e in events if e["type"] == "tool_call"]
    refused = [r for n, r in by_name if n in ("delete_file", "create_file") and not r["ok"]]
    assert len(refused) == 2 and all(".git" in r["text"] for r in refused), by_name
    ran = [r for n, r in by_name if n == "run_tests"]
    assert ran and "1 passed" in ran[0]["text"], ran  # the conftest really ran in the sandbox
    status = next(r for n, r in by_name if n == "git_status")
    assert status["ok"] and "conftest.py" in status["text"], status
    assert events[-1]["type"] == "run_finished", proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    assert not marker.exists(), "hostile git config planted by the sandbox ran on the host"
    assert _user_git_state(repo) == before
    branch = git(repo, "branch", "--list", "k2lsp/*").split()[-1]
    assert "return b + a" in git(repo, "show", f"{branch}:app.py")
    recorded = [c for c in calls(log) if "arg=init.defaultBranch=main" not in c]
    assert recorded and not any(TEST_KEY in c for c in recorded), "the key reached git"
    assert TEST_KEY not in proc.stdout + proc.stderr
    assert os.path.exists(repo / ".git" / "config")
