"""Issue 10, item 10 (commits): the task text never goes verbatim into a commit message, and a
change set that adds a known secret is refused for every delivery mode, naming file and line,
with nothing written, committed or saved and the run copy kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEST_KEY, make_k2_env
from git_helpers import git, make_repo, repo_state, tree_bytes

from k2lsp.agent.events import Outcome
from k2lsp.git import BODY_MAX, SUBJECT_MAX, commit_message, deliver, find_secrets
from k2lsp.model.fake_script import Reply
from k2lsp.model.fake_server import FakeK2Server
from k2lsp.redact import register_secret
from k2lsp.runcopy import RunCopy

GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
FILES = {"app.py": "def add(a, b):\n    return a + b\n", "README.md": "# app\n"}


def test_commit_message_is_redacted_bounded_and_printable() -> None:
    register_secret(TEST_KEY)
    task = f"Use key {TEST_KEY} and token {GITHUB_TOKEN}\x1b[31m now\n" + "more words " * 2_000
    message = commit_message(task, "run-1")
    assert TEST_KEY not in message and GITHUB_TOKEN not in message
    assert "[REDACTED]" in message and "\x1b" not in message
    subject = message.splitlines()[0]
    assert len(subject) <= len("k2lsp: ") + SUBJECT_MAX + 1
    assert len(message) < BODY_MAX + 200 and "[... task cut ...]" in message
    assert message.endswith("K2lsp-Run: run-1\nGenerated-by: k2lsp\n")


def test_branch_commit_never_carries_the_raw_task(tmp_path: Path) -> None:
    register_secret(TEST_KEY)
    repo = make_repo(tmp_path / "repo", FILES)
    rc = RunCopy.create(repo, "msg", state_dir=tmp_path / "state")
    try:
        (rc.root / "app.py").write_text("def add(a, b):\n    return b + a\n")
        task = f"fix it; the key is {TEST_KEY}"
        delivery = deliver(rc, rc.changes(), "branch", task=task)
        assert delivery.outcome is Outcome.SUCCESS, delivery.message
        logged = git(repo, "log", "-1", "--format=%B", rc.branch or "")
        assert TEST_KEY not in logged and "[REDACTED]" in logged
        reflog = (repo / ".git" / "logs" / "refs" / "heads" / "k2lsp" / "msg").read_text()
        assert TEST_KEY not in reflog
    finally:
        rc.cleanup(keep_branch=True)


@pytest.mark.parametrize("mode", ["branch", "apply", "patch"])
@pytest.mark.parametrize(
    ("path", "content", "line"),
    [
        ("config.py", f'API_KEY = "{TEST_KEY}"\n', 2),
        ("deploy/settings.toml", f"token = '{GITHUB_TOKEN}'\n", 2),
        ("app.py", None, 3),
    ],
)
def test_a_change_set_adding_a_secret_is_refused_in_every_mode(
    tmp_path: Path, mode: str, path: str, content: str | None, line: int
) -> None:
    register_secret(TEST_KEY)
    repo = make_repo(tmp_path / "repo", FILES)
    before_state, before_files = repo_state(repo), tree_bytes(repo)
    rc = RunCopy.create(repo, "s", state_dir=tmp_path / "state")
    target = rc.root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if content is None:  # a secret added to an existing file
        new = "def add(a, b):\n    return a + b\nKEY = '" + TEST_KEY + "'\n"
    else:
        new = "# settings\n" + content
    target.write_text(new)
    patch_file = tmp_path / "out.patch"
    try:
        changes = rc.changes()
        assert find_secrets(changes) == [f"{path}:{line}"]
        delivery = deliver(rc, changes, mode, task="t", patch_file=patch_file)
        assert delivery.outcome is Outcome.USAGE_ERROR and delivery.keep_run_copy
        assert f"{path}:{line}" in delivery.message and str(rc.root) in delivery.message
        assert TEST_KEY not in delivery.message and GITHUB_TOKEN not in delivery.message
        assert not delivery.patch and not patch_file.exists()
        assert target.read_text() == new  # never silently altered
        assert repo_state(repo) == before_state and tree_bytes(repo) == before_files
        assert git(repo, "rev-parse", "k2lsp/s").strip() == rc.base_commit  # no commit
        assert not (rc.state_dir / "patches").exists()
    finally:
        rc.cleanup()


def test_secrets_already_in_the_repository_do_not_block_delivery(tmp_path: Path) -> None:
    register_secret(TEST_KEY)
    repo = make_repo(tmp_path / "repo", {**FILES, "old.py": f"KEY = '{GITHUB_TOKEN}'\n"})
    rc = RunCopy.create(repo, "old", state_dir=tmp_path / "state")
    try:
        (rc.root / "old.py").write_text(f"KEY = '{GITHUB_TOKEN}'\nX = 1\n")
        changes = rc.changes()
        assert find_secrets(changes) == []
        assert deliver(rc, changes, "patch", task="t").outcome is Outcome.SUCCESS
    finally:
        rc.cleanup()


def test_headless_run_that_writes_the_key_is_refused_and_keeps_the_copy(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    script = [
        Reply(
            reasoning="write the key",
            tool_calls=[("create_file", {"path": "leak.py", "content": f'K = "{TEST_KEY}"\n'})],
        ),
        Reply(content="Done."),
    ]
    env = make_k2_env("http://unused")
    env.update(K2LSP_STATE_DIR=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    env.pop("CI", None)
    with FakeK2Server(script, models=["kimi-k2-thinking"]) as srv:
        env["K2LSP_BASE_URL"] = srv.base_url
        task = f"do it with {TEST_KEY}"
        argv = ["--task", task, "--repo", str(repo), "--sandbox", "none", "--output", "branch"]
        proc = subprocess.run(
            [sys.executable, "-m", "k2lsp", *argv, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 2, proc.stderr
    assert "leak.py:1" in proc.stdout + proc.stderr
    assert TEST_KEY not in proc.stdout + proc.stderr
    branch = git(repo, "branch", "--list", "k2lsp/*").split()[-1]  # kept with the copy
    assert git(repo, "rev-parse", branch) == git(repo, "rev-parse", "HEAD")  # no commit on it
    finished = json.loads(proc.stdout.splitlines()[-1])
    assert finished["type"] == "run_finished" and finished["outcome"] == "usage_error"
    kept = list((tmp_path / "state" / "runs").glob("*/copy/repo/leak.py"))
    assert kept and TEST_KEY in kept[0].read_text()  # the work is kept, unaltered
