"""Run copies made from real repositories: what goes in, what the user keeps, what gc removes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from git_helpers import git, make_repo, repo_state, tree_bytes, write

from k2lsp import runcopy
from k2lsp.errors import PathError, UsageError
from k2lsp.runcopy import RunCopy


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def dirty_repo(path: Path) -> Path:
    """Committed files, then staged, unstaged, untracked, ignored changes and a deletion."""
    repo = make_repo(
        path,
        {
            "a.txt": "a1\na2\n",
            "b.txt": "b1\n",
            "c.txt": "c1\n",
            "gone.txt": "bye\n",
            ".gitignore": "*.log\nbuild/\n",
            "pkg/mod.py": "x = 1\n",
        },
    )
    write(repo, {"b.txt": "b1\nstaged\n"})
    git(repo, "add", "b.txt")
    write(repo, {"c.txt": "c1\nstaged\n"})
    git(repo, "add", "c.txt")
    write(
        repo,
        {
            "c.txt": "c1\nstaged\nunstaged\n",
            "a.txt": "a1\na2\nunstaged\n",
            "new.txt": "untracked\n",
            "debug.log": "ignored\n",
            "build/out.bin": b"\0",
        },
    )
    (repo / "gone.txt").unlink()
    return repo


def test_dirty_tree_is_carried_into_run_copy_and_preserved(tmp_path: Path, state: Path) -> None:
    repo = dirty_repo(tmp_path / "repo")
    before_state, before_files = repo_state(repo), tree_bytes(repo)
    rc = RunCopy.create(repo, "run-1", state_dir=state)
    try:
        copied = tree_bytes(rc.root)
        assert copied["a.txt"][0] == b"a1\na2\nunstaged\n"
        assert copied["b.txt"][0] == b"b1\nstaged\n"
        assert copied["c.txt"][0] == b"c1\nstaged\nunstaged\n"
        assert copied["new.txt"][0] == b"untracked\n"
        assert "gone.txt" not in copied and "debug.log" not in copied
        assert "build/out.bin" not in copied
        assert rc.branch == "k2lsp/run-1" and rc.is_git
        assert rc.root.is_relative_to(state / "runs" / "run-1")
        assert not rc.changes()  # nothing changed yet
        assert repo_state(repo) == before_state
        assert tree_bytes(repo) == before_files
        assert git(repo, "rev-parse", "k2lsp/run-1").strip() == rc.base_commit
    finally:
        rc.cleanup()
    assert repo_state(repo) == before_state and tree_bytes(repo) == before_files
    assert git(repo, "branch", "--list", "k2lsp/*") == ""
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    assert not (state / "runs" / "run-1").exists()


def test_clean_tree_uses_head_as_base(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "print(1)\n"})
    rc = RunCopy.create(repo, "r", state_dir=state)
    assert rc.base_commit == git(repo, "rev-parse", "HEAD").strip()
    rc.cleanup()


def test_unsaved_buffers_are_part_of_the_starting_snapshot(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "on disk\n"})
    rc = RunCopy.create(
        repo, "r", overlay={"a.py": "in editor\n", "b.py": "new buffer\n"}, state_dir=state
    )
    assert (rc.root / "a.py").read_text() == "in editor\n"
    assert (rc.root / "b.py").read_text() == "new buffer\n"
    assert not rc.changes()
    assert (repo / "a.py").read_text() == "on disk\n" and not (repo / "b.py").exists()
    rc.cleanup()


def test_overlay_outside_the_folder_is_refused_and_leaves_nothing(
    tmp_path: Path, state: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "x\n"})
    with pytest.raises(PathError, match="outside the workspace"):
        RunCopy.create(repo, "r", overlay={"../evil.py": "x"}, state_dir=state)
    assert not (state / "runs" / "r").exists()
    assert git(repo, "branch", "--list", "k2lsp/*") == ""


@pytest.mark.parametrize("run_id", ["", "../x", "a b", "x.lock", "-rf", "a..b"])
def test_unusable_run_id_is_refused(tmp_path: Path, state: Path, run_id: str) -> None:
    repo = make_repo(tmp_path / "repo", {"a": "1\n"})
    with pytest.raises(UsageError, match="run id"):
        RunCopy.create(repo, run_id, state_dir=state)


def test_missing_source_and_duplicate_run_are_refused(tmp_path: Path, state: Path) -> None:
    with pytest.raises(UsageError, match="not a folder"):
        RunCopy.create(tmp_path / "nope", "r", state_dir=state)
    repo = make_repo(tmp_path / "repo", {"a": "1\n"})
    rc = RunCopy.create(repo, "r", state_dir=state)
    with pytest.raises(UsageError, match="already exists"):
        RunCopy.create(repo, "r", state_dir=state)
    assert rc.root.is_dir()  # the first run is unharmed
    rc.cleanup()


def test_changes_cover_edits_deletions_renames_binaries_and_modes(
    tmp_path: Path, state: Path
) -> None:
    body = "".join(f"line {i}\n" for i in range(30))
    repo = make_repo(
        tmp_path / "repo",
        {
            "m.txt": "old\n",
            "d.txt": "del\n",
            "r_old.py": body,
            "img.bin": b"\x89PNG\0\1",
            "run.sh": "echo\n",
        },
    )
    rc = RunCopy.create(repo, "r", state_dir=state)
    write(
        rc.root,
        {"m.txt": "new\n", "c.txt": "created\n", "img.bin": b"\x89PNG\0\2", "new.bin": b"\0\0"},
    )
    (rc.root / "d.txt").unlink()
    os.rename(rc.root / "r_old.py", rc.root / "r_new.py")
    write(rc.root, {"r_new.py": body + "extra\n"})
    os.chmod(rc.root / "run.sh", 0o755)
    by_path = {f.path: f for f in rc.changes().files}
    assert by_path["m.txt"].kind == "modified" and by_path["m.txt"].new_text == "new\n"
    assert by_path["c.txt"].kind == "created" and by_path["c.txt"].old_text is None
    assert by_path["d.txt"].kind == "deleted" and by_path["d.txt"].old_text == "del\n"
    renamed = by_path["r_new.py"]
    assert renamed.kind == "renamed" and renamed.old_path == "r_old.py"
    assert renamed.new_text == body + "extra\n"
    assert by_path["img.bin"].binary and by_path["img.bin"].kind == "modified"
    assert by_path["new.bin"].binary and by_path["new.bin"].kind == "created"
    assert (by_path["run.sh"].old_mode, by_path["run.sh"].new_mode) == ("100644", "100755")
    assert "+new" in rc.changes().diff()
    rc.cleanup()


def test_detached_head(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "1\n"})
    write(repo, {"a.txt": "2\n"})
    git(repo, "commit", "-qam", "two")
    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    write(repo, {"a.txt": "dirty\n"})
    before = repo_state(repo)
    rc = RunCopy.create(repo, "r", state_dir=state)
    assert (rc.root / "a.txt").read_text() == "dirty\n"
    assert (
        git(repo, "rev-parse", f"{rc.base_commit}~1").strip()
        == git(repo, "rev-parse", "HEAD").strip()
    )
    rc.cleanup()
    assert repo_state(repo) == before


def test_repository_without_commits(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "staged\n"}, commit=False)
    git(repo, "add", "a.txt")
    write(repo, {"b.txt": "untracked\n"})
    before = repo_state(repo)
    rc = RunCopy.create(repo, "r", state_dir=state)
    assert tree_bytes(rc.root).keys() == {"a.txt", "b.txt"}
    assert git(repo, "rev-list", "--parents", "-n1", rc.base_commit).split() == [rc.base_commit]
    write(rc.root, {"a.txt": "changed\n"})
    assert [f.path for f in rc.changes().files] == ["a.txt"]
    rc.cleanup()
    assert repo_state(repo) == before


def test_subfolder_source_confines_root_and_paths(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"top.txt": "t\n", "sub/in.txt": "i\n"})
    rc = RunCopy.create(repo / "sub", "r", state_dir=state)
    assert rc.root.name == "sub" and (rc.root / "in.txt").is_file()
    write(rc.root, {"in.txt": "changed\n"})
    write(rc.root.parent, {"top.txt": "outside the folder\n"})
    assert [f.path for f in rc.changes().files] == ["in.txt"]
    rc.cleanup()


def test_non_git_folder_gets_a_temporary_copy(tmp_path: Path, state: Path) -> None:
    folder = tmp_path / "plain"
    write(
        folder,
        {
            "a.txt": "a\n",
            ".venv/lib.py": "heavy\n",
            "node_modules/x.js": "x\n",
            "sub/b.bin": b"\0\1",
        },
    )
    before = tree_bytes(folder)
    rc = RunCopy.create(folder, "r", state_dir=state)
    assert not rc.is_git and rc.branch is None
    copied = tree_bytes(rc.root)
    assert copied.keys() == {"a.txt", "sub/b.bin"}
    write(rc.root, {"a.txt": "changed\n"})
    assert [f.path for f in rc.changes().files] == ["a.txt"]
    rc.cleanup()
    assert tree_bytes(folder) == before and not (folder / ".git").exists()
    assert not (state / "runs" / "r").exists()


def test_submodule_is_skipped_without_crashing(tmp_path: Path, state: Path) -> None:
    inner = make_repo(tmp_path / "inner", {"lib.txt": "lib\n"})
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    git(repo, "submodule", "add", "-q", str(inner), "vendor/inner")
    git(repo, "commit", "-qm", "add submodule")
    write(repo / "vendor" / "inner", {"lib.txt": "changed in submodule\n"})
    rc = RunCopy.create(repo, "r", state_dir=state)
    write(rc.root, {"a.txt": "b\n"})
    assert [f.path for f in rc.changes().files] == ["a.txt"]
    rc.cleanup()
    assert (repo / "vendor" / "inner" / "lib.txt").read_text() == "changed in submodule\n"


def test_large_binary_file_is_carried(tmp_path: Path, state: Path) -> None:
    blob = os.urandom(3 * 1024 * 1024)
    repo = make_repo(tmp_path / "repo", {"small.txt": "s\n"})
    write(repo, {"big.dat": blob})
    rc = RunCopy.create(repo, "r", state_dir=state)
    assert (rc.root / "big.dat").read_bytes() == blob
    rc.cleanup()


def test_gc_removes_runs_of_dead_processes_only(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    live = RunCopy.create(repo, "live", state_dir=state)
    code = (
        "import os, sys; from k2lsp.runcopy import RunCopy; "
        "RunCopy.create(sys.argv[1], 'crashed', state_dir=sys.argv[2]); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(repo), str(state)], check=True)
    assert (state / "runs" / "crashed").is_dir()
    assert runcopy.stale_runs(state) == [state / "runs" / "crashed"]
    assert runcopy.cli_gc(["--state-dir", str(state), "--dry-run"]) == 0
    assert (state / "runs" / "crashed").is_dir()
    assert runcopy.cli_gc(["--state-dir", str(state)]) == 0
    assert not (state / "runs" / "crashed").exists()
    assert "k2lsp/crashed" not in git(repo, "branch", "--list", "k2lsp/*")
    assert live.root.is_dir() and "k2lsp/live" in git(repo, "branch", "--list", "k2lsp/*")
    assert len(git(repo, "worktree", "list").splitlines()) == 1  # run copies are not worktrees
    live.cleanup()


def test_gc_handles_a_deleted_source_repository(tmp_path: Path, state: Path) -> None:
    import shutil

    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    code = (
        "import os, sys; from k2lsp.runcopy import RunCopy; "
        "RunCopy.create(sys.argv[1], 'orphan', state_dir=sys.argv[2]); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(repo), str(state)], check=True)
    shutil.rmtree(repo)
    assert runcopy.cli_gc(["--state-dir", str(state)]) == 0
    assert not (state / "runs" / "orphan").exists()


def test_uncommitted_secrets_stay_out_of_snapshot_commits(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"app.py": "x\n", "conf/.env": "OLD=1\n"})
    write(repo, {".env": "API_KEY=untracked\n", "conf/.env": "NEW=staged\n", "k.pem": "PEM\n"})
    git(repo, "add", "conf/.env")
    write(repo, {"app.py": "y\n"})
    rc = RunCopy.create(repo, "r", overlay={".env.local": "X=unsaved\n"}, state_dir=state)
    files = tree_bytes(rc.root)
    assert ".env" not in files and "k.pem" not in files and ".env.local" not in files
    assert files["conf/.env"][0] == b"OLD=1\n"  # the committed version, not the new secret
    assert files["app.py"][0] == b"y\n"
    assert git(repo, "show", f"{rc.base_commit}:conf/.env") == "OLD=1\n"
    rc.cleanup()
    assert (repo / ".env").read_text() == "API_KEY=untracked\n"
    assert git(repo, "diff", "--cached", "--name-only") == "conf/.env\n"


def test_gc_with_nothing_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert runcopy.cli_gc(["--state-dir", str(tmp_path / "empty")]) == 0
    assert "no stale run copies" in capsys.readouterr().out


def test_cleanup_and_gc_leave_the_users_stale_worktrees_alone(tmp_path: Path, state: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    git(repo, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "userwt"))
    os.rename(tmp_path / "userwt", tmp_path / "userwt-moved")  # stale until `worktree repair`
    admin = repo / ".git" / "worktrees" / "userwt"
    kept = {p.name: p.read_bytes() for p in admin.iterdir() if p.is_file()}
    assert "HEAD" in kept and "index" in kept
    rc = RunCopy.create(repo, "r", state_dir=state)
    rc.cleanup()
    code = (
        "import os, sys; from k2lsp.runcopy import RunCopy; "
        "RunCopy.create(sys.argv[1], 'crashed', state_dir=sys.argv[2]); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(repo), str(state)], check=True)
    assert runcopy.cli_gc(["--state-dir", str(state)]) == 0
    assert {p.name: p.read_bytes() for p in admin.iterdir() if p.is_file()} == kept
    assert sorted(p.name for p in (repo / ".git" / "worktrees").iterdir()) == ["userwt"]
    moved = tmp_path / "userwt-moved"
    git(moved, "worktree", "repair")  # the user's worktree still works once found again
    assert git(moved, "rev-parse", "--abbrev-ref", "HEAD").strip() == "feature"


def test_collect_leaves_a_run_being_created_alone(tmp_path: Path, state: Path) -> None:
    """A run folder without run.json may be one whose lock is not taken yet: kept while young."""
    young = state / "runs" / "20260101-000000-young"
    old = state / "runs" / "20260101-000000-old"
    for folder in (young, old):
        folder.mkdir(parents=True)
    os.utime(old, (0, 0))
    assert runcopy.collect(state) == [f"removed {old} (incomplete run folder)"]
    assert young.is_dir() and not old.exists()
