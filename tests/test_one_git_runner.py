"""Every git command goes through the one hardened runner, `k2lsp/runs/gitcmd.py`, so an
inherited `GIT_DIR`/`GIT_WORK_TREE` never points k2lsp at another repository."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from git_helpers import git, make_repo

import k2lsp

PACKAGE = Path(k2lsp.__file__).parent
RUNNER = PACKAGE / "runs" / "gitcmd.py"


def _git_argvs(path: Path) -> list[int]:
    """Lines of list/tuple literals starting with "git" (a git argv built by hand), except
    the argv of a `CompletedProcess` made up to report an error."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "CompletedProcess":
            allowed.update(id(arg) for arg in node.args[:1])
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, (ast.List, ast.Tuple))
        and node.elts
        and isinstance(node.elts[0], ast.Constant)
        and node.elts[0].value == "git"
        and id(node) not in allowed
    ]


def test_no_module_runs_git_but_the_one_runner() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != RUNNER and (lines := _git_argvs(path))
    }
    assert offenders == {}


def test_demo_repository_is_made_where_asked_whatever_git_dir_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k2lsp.demo.demo import make_repo as make_demo_repo

    other = make_repo(tmp_path / "other", {"other_only.py": "x = 1\n"})
    head = git(other, "rev-parse", "HEAD")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    (tmp_path / "demo").mkdir()
    repo = make_demo_repo(tmp_path / "demo")
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    assert (repo / ".git").is_dir()
    assert git(other, "rev-parse", "HEAD") == head
    files = git(repo, "ls-files").split()
    assert files and "other_only.py" not in files
