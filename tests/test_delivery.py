"""Delivering a run's changes into real repositories: apply (three-way), branch, patch."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from git_helpers import git, make_repo, repo_state, tree_bytes, write

from k2lsp.errors import Outcome, UsageError
from k2lsp.fs import safefs
from k2lsp.runs import checkpoint
from k2lsp.runs.changes import ChangeSet
from k2lsp.runs.git import deliver
from k2lsp.runs.merge import merge3
from k2lsp.runs.runcopy import RunCopy
from k2lsp.runs.secrets import TRAILER

BODY = "".join(f"line {i}\n" for i in range(1, 21))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def edit_line(text: str, n: int, new: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[n - 1] = new + "\n"
    return "".join(lines)


def test_merge3_combines_disjoint_hunks_and_flags_overlaps() -> None:
    ours = edit_line(BODY, 2, "user")
    theirs = edit_line(BODY, 18, "agent")
    merged, conflicted = merge3(BODY, ours, theirs)
    assert not conflicted and "user\n" in merged and "agent\n" in merged
    merged, conflicted = merge3(BODY, edit_line(BODY, 5, "A"), edit_line(BODY, 5, "B"))
    assert conflicted and "<<<<<<<" in merged and ">>>>>>> k2lsp" in merged
    assert merge3(BODY, BODY, BODY) == (BODY, False)


def test_apply_writes_every_kind_of_change_and_keeps_user_state(
    tmp_path: Path, state: Path
) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "m.txt": BODY,
            "d.txt": "del\n",
            "old.py": BODY,
            "img.bin": b"\0\1\2",
            "run.sh": "echo\n",
            "keep.txt": "k\n",
        },
    )
    write(repo, {"keep.txt": "user's uncommitted edit\n"})
    git(repo, "add", "keep.txt")
    write(repo, {"scratch.txt": "untracked notes\n"})
    rc = RunCopy.create(repo, "r", state_dir=state)
    write(
        rc.root,
        {
            "m.txt": edit_line(BODY, 3, "changed"),
            "dir/new.txt": "created\n",
            "img.bin": b"\0\x09\x09",
        },
    )
    (rc.root / "d.txt").unlink()
    os.rename(rc.root / "old.py", rc.root / "new.py")
    os.chmod(rc.root / "run.sh", 0o755)
    index_before = repo_state(repo)["index"]
    d = deliver(rc, rc.changes(), "apply", task="do things")
    assert d.outcome is Outcome.SUCCESS, d.message
    assert d.checkpoint and "k2lsp undo" in d.message
    assert (repo / "m.txt").read_text() == edit_line(BODY, 3, "changed")
    assert (repo / "dir/new.txt").read_text() == "created\n"
    assert (repo / "img.bin").read_bytes() == b"\0\x09\x09"
    assert not (repo / "d.txt").exists() and not (repo / "old.py").exists()
    assert (repo / "new.py").read_text() == BODY
    assert os.stat(repo / "run.sh").st_mode & 0o111
    assert (repo / "keep.txt").read_text() == "user's uncommitted edit\n"
    assert (repo / "scratch.txt").read_text() == "untracked notes\n"
    assert repo_state(repo)["index"] == index_before  # the user's staging is untouched
    rc.cleanup()


def test_apply_merges_a_user_edit_made_during_the_run(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"f.txt": BODY})
    rc = RunCopy.create(repo, "r", state_dir=state)
    write(rc.root, {"f.txt": edit_line(BODY, 18, "agent")})
    write(repo, {"f.txt": edit_line(BODY, 2, "user typing")})  # the user keeps working
    d = deliver(rc, rc.changes(), "apply", task="t")
    assert d.outcome is Outcome.SUCCESS, d.message
    assert (repo / "f.txt").read_text() == edit_line(edit_line(BODY, 2, "user typing"), 18, "agent")
    rc.cleanup()


def test_overlapping_user_edit_is_a_conflict_and_nothing_is_lost(
    tmp_path: Path, state: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"f.txt": BODY, "g.txt": "g\n"})
    rc = RunCopy.create(repo, "r", state_dir=state)
    write(rc.root, {"f.txt": edit_line(BODY, 5, "agent"), "g.txt": "agent g\n"})
    write(repo, {"f.txt": edit_line(BODY, 5, "user")})
    before = tree_bytes(repo)
    d = deliver(rc, rc.changes(), "apply", task="t")
    assert d.outcome is Outcome.EDIT_CONFLICT and d.outcome.exit_code == 5
    assert d.conflicts == ["f.txt"] and "f.txt" in d.message
    assert tree_bytes(repo) == before  # not even the clean g.txt was written
    assert d.patch_file is not None and str(d.patch_file) in d.message
    saved = d.patch_file.read_text()
    assert "+agent" in saved and "+agent g" in saved
    assert d.checkpoint is None
    rc.cleanup()


def test_conflicting_creation_and_deleted_by_user(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"f.txt": BODY})
    rc = RunCopy.create(repo, "r", state_dir=state)
    write(rc.root, {"f.txt": edit_line(BODY, 1, "agent"), "n.txt": "agent\n"})
    (repo / "f.txt").unlink()
    write(repo, {"n.txt": "user made this\n"})
    d = deliver(rc, rc.changes(), "apply", task="t")
    assert d.outcome is Outcome.EDIT_CONFLICT and d.conflicts == ["f.txt", "n.txt"]
    assert (repo / "n.txt").read_text() == "user made this\n" and not (repo / "f.txt").exists()
    rc.cleanup()


def test_same_change_made_by_both_is_not_a_conflict(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"f.txt": BODY})
    rc = RunCopy.create(repo, "r", state_dir=state)
    write(rc.root, {"f.txt": "same\n"})
    write(repo, {"f.txt": "same\n"})
    d = deliver(rc, rc.changes(), "apply", task="t")
    assert d.outcome is Outcome.SUCCESS and d.checkpoint is None
    rc.cleanup()


def test_branch_commits_on_run_branch_and_leaves_user_untouched(
    tmp_path: Path, state: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"f.txt": BODY, "x.bin": b"\0"})
    before_state, before_files = repo_state(repo), tree_bytes(repo)
    rc = RunCopy.create(repo, "r7", state_dir=state)
    write(rc.root, {"f.txt": edit_line(BODY, 1, "agent"), "x.bin": b"\0\0"})
    d = deliver(rc, rc.changes(), "branch", task="Fix the parser\nbecause it broke")
    assert d.outcome is Outcome.SUCCESS and d.branch == "k2lsp/r7" and d.commit
    message = git(repo, "log", "-1", "--format=%B", "k2lsp/r7")
    assert "Fix the parser" in message and TRAILER in message and "K2lsp-Run: r7" in message
    assert git(repo, "show", "k2lsp/r7:f.txt") == edit_line(BODY, 1, "agent")
    assert git(repo, "rev-parse", "k2lsp/r7~1").strip() == rc.base_commit
    rc.cleanup()  # a branch carrying a delivered commit survives cleanup
    assert git(repo, "rev-parse", "k2lsp/r7").strip() == d.commit
    assert repo_state(repo) == before_state and tree_bytes(repo) == before_files


def test_branch_on_non_git_folder_saves_patch_and_says_what_to_do(
    tmp_path: Path, state: Path
) -> None:
    folder = tmp_path / "plain"
    write(folder, {"a.txt": "a\n"})
    rc = RunCopy.create(folder, "r", state_dir=state)
    write(rc.root, {"a.txt": "b\n"})
    d = deliver(rc, rc.changes(), "branch", task="t")
    assert d.outcome is Outcome.USAGE_ERROR and "--output apply" in d.message
    assert d.patch_file is not None and "+b" in d.patch_file.read_text()
    assert (folder / "a.txt").read_text() == "a\n"
    rc.cleanup()


def test_patch_applies_cleanly_to_the_users_tree(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"f.txt": BODY, "old.txt": BODY, "b.bin": b"\0\1"})
    write(repo, {"f.txt": edit_line(BODY, 10, "uncommitted")})
    rc = RunCopy.create(repo, "r", state_dir=state)
    write(
        rc.root,
        {"f.txt": edit_line(edit_line(BODY, 10, "uncommitted"), 1, "agent"), "b.bin": b"\0\2\3"},
    )
    os.rename(rc.root / "old.txt", rc.root / "moved.txt")
    out = tmp_path / "out" / "run.patch"
    d = deliver(rc, rc.changes(), "patch", task="t", patch_file=out)
    assert d.outcome is Outcome.SUCCESS and out.read_text() == d.patch
    assert "rename from old.txt" in d.patch and "GIT binary patch" in d.patch
    git(repo, "apply", str(out))
    assert tree_bytes(repo) == tree_bytes(rc.root)
    rc.cleanup()


def test_apply_in_non_git_folder(tmp_path: Path, state: Path) -> None:
    folder = tmp_path / "plain"
    write(folder, {"a.txt": BODY})
    rc = RunCopy.create(folder, "r", state_dir=state)
    write(rc.root, {"a.txt": edit_line(BODY, 20, "agent"), "n.txt": "new\n"})
    write(folder, {"a.txt": edit_line(BODY, 1, "user")})
    d = deliver(rc, rc.changes(), "apply", task="t")
    assert d.outcome is Outcome.SUCCESS, d.message
    assert (folder / "a.txt").read_text() == edit_line(edit_line(BODY, 1, "user"), 20, "agent")
    assert (folder / "n.txt").read_text() == "new\n"
    rc.cleanup()


def test_empty_change_set_and_unknown_mode(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"f.txt": "x\n"})
    rc = RunCopy.create(repo, "r", state_dir=state)
    for mode in ("apply", "branch", "patch"):
        d = deliver(rc, ChangeSet(), mode, task="t")
        assert d.outcome is Outcome.SUCCESS and "nothing" in d.message
    with pytest.raises(UsageError, match="apply, branch, patch"):
        deliver(rc, rc.changes(), "email", task="t")
    rc.cleanup()


def test_crlf_and_subfolder_apply_keep_bytes_exact(tmp_path: Path, state: Path) -> None:
    crlf = BODY.replace("\n", "\r\n")
    repo = make_repo(tmp_path / "repo", {"sub/w.txt": crlf, "top.txt": "t\n"})
    rc = RunCopy.create(repo / "sub", "r", state_dir=state)
    write(rc.root, {"w.txt": crlf.replace("line 3\r\n", "agent\r\n")})
    d = deliver(rc, rc.changes(), "apply", task="t")
    assert d.outcome is Outcome.SUCCESS and d.files == ["w.txt"]
    assert (repo / "sub/w.txt").read_bytes() == crlf.replace("line 3\r\n", "agent\r\n").encode()
    rc.cleanup()


@pytest.mark.parametrize("output", ["apply", "branch", "patch"])
def test_headless_cli_delivers_through_each_output_mode(tmp_path: Path, output: str) -> None:
    import subprocess
    import sys

    from conftest import make_k2_env

    from k2lsp.fake.server import FakeK2Server, Reply

    repo = make_repo(tmp_path / "repo", {"a.py": "def f():\n    return 1\n"})
    write(repo, {"notes.txt": "user's untracked notes\n"})
    edit = {"path": "a.py", "old_text": "return 1", "new_text": "return 2"}
    script = [Reply(reasoning="edit", tool_calls=[("edit_file", edit)]), Reply(content="Done.")]
    env = make_k2_env("")
    with FakeK2Server(script, models=["kimi-k2-thinking"]) as srv:
        env.update(
            K2LSP_BASE_URL=srv.base_url,
            XDG_STATE_HOME=str(tmp_path / "xdg"),
            XDG_CONFIG_HOME=str(tmp_path / "cfg"),
        )
        env.pop("CI", None)
        args = [
            "--task",
            "make f return 2",
            "--repo",
            str(repo),
            "--output",
            output,
            "--sandbox",
            "none",
        ]
        proc = subprocess.run(
            [sys.executable, "-m", "k2lsp", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 0, proc.stderr
    assert (repo / "notes.txt").read_text() == "user's untracked notes\n"
    if output == "apply":
        assert "return 2" in (repo / "a.py").read_text()
        undo_proc = subprocess.run(
            [sys.executable, "-m", "k2lsp", "undo", "--repo", str(repo)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert undo_proc.returncode == 0, undo_proc.stderr
        assert (repo / "a.py").read_text() == "def f():\n    return 1\n"
    elif output == "branch":
        assert (repo / "a.py").read_text() == "def f():\n    return 1\n"
        branch = git(repo, "branch", "--list", "k2lsp/*").strip()
        assert branch and "return 2" in git(repo, "show", f"{branch}:a.py")
        assert TRAILER in git(repo, "log", "-1", "--format=%B", branch)
    else:
        assert "+    return 2" in proc.stdout
        assert (repo / "a.py").read_text() == "def f():\n    return 1\n"
    assert not list((tmp_path / "xdg" / "k2lsp" / "runs").iterdir())  # run copy cleaned up


def test_folder_in_the_way_is_a_conflict_not_a_deletion(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    rc = RunCopy.create(repo, "r", state_dir=state)
    write(rc.root, {"thing": "agent file\n"})
    write(repo, {"thing/user.txt": "precious\n"})
    d = deliver(rc, rc.changes(), "apply", task="t")
    assert d.outcome is Outcome.EDIT_CONFLICT and "folder" in d.message
    assert (repo / "thing/user.txt").read_text() == "precious\n"
    rc.cleanup()


def test_run_litter_is_not_part_of_the_change_set(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"m.py": "x = 1\n"})
    rc = RunCopy.create(repo, "r", state_dir=state)
    write(
        rc.root,
        {
            "__pycache__/m.cpython-311.pyc": b"\0pyc",
            ".pytest_cache/v/x": "1",
            "pkg/__pycache__/y.pyc": b"\0",
            ".coverage": b"\0",
            "m.py": "x = 2\n",
        },
    )
    assert rc.changes().paths() == ["m.py"]
    rc.cleanup()


def test_symlink_escaping_the_folder_is_not_delivered(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    rc = RunCopy.create(repo, "r", state_dir=state)
    os.symlink("/etc/passwd", rc.root / "leak")
    os.symlink("a.txt", rc.root / "alias")
    d = deliver(rc, rc.changes(), "apply", task="t")
    assert d.outcome is Outcome.EDIT_CONFLICT and d.conflicts == ["leak"]
    assert not (repo / "leak").is_symlink() and not (repo / "alias").exists()
    (rc.root / "leak").unlink()
    d = deliver(rc, rc.changes(), "apply", task="t")
    assert d.outcome is Outcome.SUCCESS and os.readlink(repo / "alias") == "a.txt"
    rc.cleanup()


def test_file_where_the_run_needs_a_folder_is_a_conflict(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "x = 1\n"})
    rc = RunCopy.create(repo, "r", state_dir=state)
    write(rc.root, {"a.py": "x = 2\n", "foo/bar.py": "y = 1\n"})
    write(repo, {"foo": "the user's file\n"})
    before = tree_bytes(repo)
    d = deliver(rc, rc.changes(), "apply", task="t")
    assert d.outcome is Outcome.EDIT_CONFLICT and d.conflicts == ["foo/bar.py"]
    assert "file at foo" in d.message and d.patch_file and d.patch_file.is_file()
    assert tree_bytes(repo) == before and d.checkpoint is None
    assert checkpoint.list_checkpoints(repo) == []
    rc.cleanup()


def test_write_failing_mid_delivery_puts_back_what_was_written(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_name = "new/" + "b" * 250
    repo = make_repo(tmp_path / "repo", {"a.py": "x = 1\n", "gone.txt": "g\n"})
    rc = RunCopy.create(repo, "r", state_dir=state)
    real_write = safefs.write_bytes

    def disk_full_at_long_name(root: Path, rel: str, data: bytes, mode: int | None = None) -> None:
        if rel == long_name:  # a full disk cannot be made here: the one injected fault
            raise OSError(errno.ENOSPC, "No space left on device", rel)
        real_write(root, rel, data, mode)

    monkeypatch.setattr(safefs, "write_bytes", disk_full_at_long_name)
    write(rc.root, {"a.py": "x = 2\n", "a_dir/made.py": "z = 1\n", long_name: "w\n"})
    (rc.root / "gone.txt").unlink()
    before, git_before = tree_bytes(repo), repo_state(repo)
    d = deliver(rc, rc.changes(), "apply", task="t")
    assert d.outcome is Outcome.EDIT_CONFLICT and d.conflicts == [long_name], d.message
    assert "could not write" in d.message and d.patch_file and d.patch_file.is_file()
    assert tree_bytes(repo) == before and repo_state(repo) == git_before
    assert not (repo / "a_dir").exists() and not (repo / "new").exists()
    assert d.checkpoint is None and checkpoint.list_checkpoints(repo) == []
    rc.cleanup()


async def test_unexpected_error_still_ends_the_run(tmp_path: Path) -> None:
    from conftest import TEST_KEY

    from k2lsp.agent.session import RunRequest, RunResult, execute_run
    from k2lsp.config.settings import Settings
    from k2lsp.fake.server import FakeK2Server, Reply

    repo = make_repo(tmp_path / "repo", {"a.py": "x = 1\n"})
    events: list[str] = []

    async def finish(result: RunResult) -> RunResult:
        raise RuntimeError("delivery blew up")

    with FakeK2Server([Reply(content="Done.")], models=["kimi-k2-thinking"]) as srv:
        settings = Settings(
            provider="openai-compatible",
            base_url=srv.base_url,
            model="kimi-k2-thinking",
            api_key=TEST_KEY,
            sandbox="none",
            state_dir=tmp_path / "state",
        )
        result = await execute_run(
            RunRequest(task="t", repo=repo),
            settings,
            [lambda e: events.append(e.type)],
            finish=finish,
        )
    assert events[-1] == "run_finished" and events.count("run_finished") == 1
    assert result.outcome is Outcome.USAGE_ERROR and "internal error" in result.summary
    assert result.run_copy is not None  # handed back, so the front-end can clean it up
    result.run_copy.cleanup()
    assert not list((tmp_path / "state" / "runs").iterdir())
