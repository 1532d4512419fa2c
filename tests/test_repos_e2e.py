"""Headless runs fix a seeded bug in real corpus packages end to end, with the default sandbox.

The scripted model (the fake K2 server over the real openai SDK) runs the tests, edits the
buggy line, runs them again; the test checks that the model was shown red, then green, and
that `--output branch` built the fix on the user's HEAD: the user's uncommitted edit is not in
the branch and the printed `git merge` works on the dirty tree. Run as root and as an ordinary
user (created here, running k2lsp from the CI's user venv).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_k2_env

from bench.corpus import BY_NAME, available, user_project
from k2lsp.fake.server import FakeK2Server, Reply
from k2lsp.sandbox import bwrap as sandbox_bwrap

ROOT = Path(__file__).resolve().parents[1]
USER = "k2lsp-repos"
USER_VENV = Path(
    os.environ.get("K2TEST_USER_VENV")
    or Path(os.environ.get("K2TEST_CI_CACHE", "/var/cache/k2lsp-ci")) / "user-venv"
)
# package -> (file, the correct text, the seeded bug)
SEEDS = {
    "inflection": (
        "inflection/__init__.py",
        "return word.replace('_', '-')",
        "return word.replace('_', '+')",
    ),
    "jsonpointer": (
        "jsonpointer.py",
        "return s.replace('~', '~0').replace('/', '~1')",
        "return s.replace('/', '~1').replace('~', '~0')",
    ),
    "cachetools": ("src/cachetools/__init__.py", "return self.__currsize\n", "return 0\n"),
    "xmltodict": (
        "xmltodict.py",
        "ns_res, ns_sep, name) if ns_res else name",
        "ns_res, ns_sep, name.upper()) if ns_res else name",
    ),
    "minimist": (
        "index.js",
        "if ((/^0x[0-9a-f]+$/i).test(x)) { return true; }",
        "if ((/^0x[0-9a-f]+$/i).test(x)) { return false; }",
    ),
}

pytestmark = pytest.mark.skipif(
    sandbox_bwrap.problem() is not None, reason=f"bwrap unavailable: {sandbox_bwrap.problem()}"
)


def git(repo: Path, *args: str, user: str | None = None) -> str:
    """Run git in `repo` (as `user` when given) and return stdout."""
    prefix = ["runuser", "-u", user, "--"] if user else []
    env = {**os.environ, "GIT_AUTHOR_NAME": "u", "GIT_AUTHOR_EMAIL": "u@example.com"}
    env.update(GIT_COMMITTER_NAME="u", GIT_COMMITTER_EMAIL="u@example.com")
    proc = subprocess.run(
        [*prefix, "git", "-C", str(repo), *args], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def seeded_project(name: str, where: Path) -> tuple[Path, str]:
    """The user's repo with the bug committed in HEAD and an unrelated uncommitted edit."""
    pkg = BY_NAME[name]
    if not available(pkg):
        pytest.skip(f"corpus package {pkg.key} missing: run `python bench/corpus.py`")
    folder = user_project(pkg, where / pkg.key)
    rel, good, bad = SEEDS[name]
    text = (folder / rel).read_text()
    assert text.count(good) == 1
    (folder / rel).write_text(text.replace(good, bad))
    git(folder, "commit", "-qam", "a bug slips in")
    dirty = next(
        n for n in ("README.md", "README.rst", "README.txt", "LICENSE") if (folder / n).exists()
    )
    with (folder / dirty).open("a") as fh:
        fh.write("\nthe user's uncommitted note\n")
    return folder, dirty


def script(name: str) -> list[Reply]:
    """Run the tests, fix the seeded line, run them again, finish."""
    rel, good, bad = SEEDS[name]
    edit = {"path": rel, "old_text": bad, "new_text": good}
    return [
        Reply(reasoning="run the tests first", tool_calls=[("run_tests", {})]),
        Reply(reasoning="the seeded line is wrong", tool_calls=[("edit_file", edit)]),
        Reply(reasoning="check", tool_calls=[("run_tests", {})]),
        Reply(content="Fixed the failing tests."),
    ]


def tool_texts(srv: FakeK2Server) -> list[str]:
    """The run_tests results the model was shown, in order."""
    last = srv.requests[-1]["messages"]
    names = {}
    for msg in last:
        for call in msg.get("tool_calls") or []:
            names[call["id"]] = call["function"]["name"]
    return [
        str(m["content"])
        for m in last
        if m.get("role") == "tool" and names.get(m.get("tool_call_id")) == "run_tests"
    ]


@pytest.fixture(scope="module")
def ordinary_user() -> Iterator[str]:
    """An unprivileged user (created when missing) that can run k2lsp from the user venv."""
    if os.getuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("creating an ordinary user needs root and runuser")
    if not (USER_VENV / "bin" / "python").exists():
        pytest.skip(f"{USER_VENV} missing: .ci/test builds it")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
    yield USER


@pytest.fixture(scope="module")
def code_for_user() -> Iterator[Path]:
    """This checkout's k2lsp copied where any user can read it (the checkout may be under
    /root), to put first on the ordinary user's PYTHONPATH."""
    where = Path(tempfile.mkdtemp(prefix="k2lsp-code-", dir="/tmp"))
    where.chmod(0o755)
    shutil.copytree(ROOT / "k2lsp", where / "k2lsp", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["chmod", "-R", "a+rX", str(where)], check=True)
    yield where
    shutil.rmtree(where, ignore_errors=True)


def headless(
    folder: Path, srv: FakeK2Server, state: Path, user: str | None, code: Path | None
) -> subprocess.CompletedProcess[str]:
    """`k2lsp --task … --output branch --json` with the default sandbox."""
    env = make_k2_env(srv.base_url)
    env.update(XDG_STATE_HOME=str(state), XDG_CONFIG_HOME=str(state / "cfg"))
    env.pop("CI", None)
    env.pop("K2LSP_SANDBOX", None)
    argv = ["--task", "fix the failing test", "--repo", str(folder), "--output", "branch", "--json"]
    if user is None:
        cmd = [sys.executable, "-m", "k2lsp", *argv]
    else:
        env.update(HOME=pwd.getpwnam(user).pw_dir, USER=user, PYTHONPATH=str(code))
        cmd = ["runuser", "-u", user, "--", str(USER_VENV / "bin" / "python"), "-m", "k2lsp", *argv]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("as_user", [False, True], ids=["root-or-self", "ordinary-user"])
@pytest.mark.parametrize("name", list(SEEDS))
def test_headless_run_fixes_a_seeded_bug_red_to_green(name: str, as_user: bool, request) -> None:  # type: ignore[no-untyped-def]
    user = request.getfixturevalue("ordinary_user") if as_user else None
    code = request.getfixturevalue("code_for_user") if as_user else None
    where = Path(tempfile.mkdtemp(prefix="k2lsp-e2e-", dir="/tmp"))
    try:
        where.chmod(0o755)
        folder, dirty = seeded_project(name, where)
        state = where / "state"
        state.mkdir()
        if user:
            subprocess.run(["chown", "-R", f"{user}:", str(where)], check=True)
        with FakeK2Server(script(name), models=["kimi-k2-thinking"]) as srv:
            proc = headless(folder, srv, state, user, code)
            shown = tool_texts(srv)
        assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
        assert len(shown) == 2, shown
        assert shown[0].startswith("FAILED") and "0 tests ran" not in shown[0], shown[0][:500]
        assert shown[1].startswith("PASSED"), shown[1][:1500]
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        results = [e for e in events if e.get("type") == "test_result"]
        assert [r["status"] for r in results] == ["failed", "passed"]
        preflight = [e for e in events if e.get("phase") == "preflight"]
        assert preflight and "sandbox: bwrap" in preflight[0]["message"]
        finished = [e for e in events if e.get("type") == "run_finished"][-1]
        assert "built on your HEAD" in json.dumps(finished)
        branch = git(folder, "branch", "--list", "k2lsp/*", user=user).strip().lstrip("* ")
        rel, good, _bad = SEEDS[name]
        assert good in git(folder, "show", f"{branch}:{rel}", user=user)
        assert "uncommitted note" not in git(folder, "show", f"{branch}:{dirty}", user=user)
        git(folder, "merge", "-q", "--no-edit", branch, user=user)  # works on the dirty tree
        assert good in (folder / rel).read_text()
        assert "uncommitted note" in (folder / dirty).read_text()
    finally:
        shutil.rmtree(where, ignore_errors=True)
