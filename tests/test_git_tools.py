"""The model's read-only git tools on a real run copy, through the tool registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from git_helpers import git, make_repo, write

import k2lsp.tools.git_tools  # noqa: F401  (registers the tools)
from k2lsp.runs.runcopy import RunCopy
from k2lsp.runs.workspace import Workspace
from k2lsp.tools.base import REGISTRY, ToolContext, ToolResult


@pytest.fixture
def run_ctx(tmp_path: Path) -> tuple[ToolContext, RunCopy, Path]:
    repo = make_repo(tmp_path / "repo", {"a.py": "x = 1\n", "img.bin": b"\0\1", ".env": "K=1\n"})
    write(repo, {"a.py": "x = 2\n"})
    git(repo, "commit", "-qam", "second commit")
    write(repo, {"notes.txt": "uncommitted\n"})
    rc = RunCopy.create(repo, "r", state_dir=tmp_path / "state")
    yield ToolContext(workspace=Workspace(rc.root)), rc, repo
    rc.cleanup()


async def call(ctx: ToolContext, name: str, **args: object) -> ToolResult:
    return await REGISTRY.execute(name, args, ctx)


async def test_status_and_diff_show_what_the_run_changed(run_ctx) -> None:
    ctx, rc, repo = run_ctx
    assert (await call(ctx, "git_diff")).text == "no differences"
    write(rc.root, {"a.py": "x = 3\n", "new.py": "y = 1\n", ".env": "K=sk-live-secret\n"})
    status = await call(ctx, "git_status")
    assert status.ok and "a.py" in status.text and "new.py" in status.text
    assert "k2lsp/r" in status.text
    diff = await call(ctx, "git_diff")
    assert diff.ok and "-x = 2" in diff.text and "+x = 3" in diff.text
    assert "sk-live-secret" not in diff.text and ".env" not in diff.text.split("\n", 3)[-1]
    only = await call(ctx, "git_diff", paths=["new.py"])
    assert "a.py" not in only.text
    assert (await call(ctx, "git_diff", staged=True)).text == "no differences"
    assert repo.joinpath("a.py").read_text() == "x = 2\n"


async def test_log_and_show(run_ctx) -> None:
    ctx, _, _ = run_ctx
    log = await call(ctx, "git_log", n=5)
    assert log.ok and "second commit" in log.text and "initial" in log.text
    assert "snapshot" in log.text.splitlines()[0]  # uncommitted work became the start commit
    shown = await call(ctx, "git_show", rev="HEAD~2", path="a.py")
    assert shown.ok and shown.text == "x = 1\n"
    binary = await call(ctx, "git_show", rev="HEAD", path="img.bin")
    assert "binary" in binary.text


@pytest.mark.parametrize(
    "args, message",
    [
        ({"rev": "HEAD", "path": "../outside"}, "outside the workspace"),
        ({"rev": "--output=/tmp/x", "path": "a.py"}, "not a revision"),
        ({"rev": "HEAD:a.py", "path": "a.py"}, "not a revision"),
        ({"rev": "nope", "path": "a.py"}, "unknown revision"),
        ({"rev": "HEAD", "path": "missing.py"}, "does not exist"),
        ({"rev": "HEAD", "path": ".env"}, "secret"),
    ],
)
async def test_show_refuses_bad_input(run_ctx, args: dict[str, str], message: str) -> None:
    ctx, _, _ = run_ctx
    result = await call(ctx, "git_show", **args)
    assert not result.ok and message in result.text


async def test_paths_are_confined_and_n_is_bounded(run_ctx) -> None:
    ctx, _, _ = run_ctx
    assert "outside the workspace" in (await call(ctx, "git_status", paths=["/etc"])).text
    assert not (await call(ctx, "git_log", n=0)).ok


async def test_not_a_repository(tmp_path: Path) -> None:
    ctx = ToolContext(workspace=Workspace(tmp_path))
    result = await call(ctx, "git_status")
    assert not result.ok and "not a git repository" in result.text
