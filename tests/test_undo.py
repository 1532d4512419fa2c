"""Checkpoints and `k2lsp undo` on real folders: exact bytes back, or a clear refusal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from git_helpers import git, make_repo, repo_state, tree_bytes, write

from k2lsp.cli.undo import cli_undo
from k2lsp.errors import EditConflict, Outcome, PathError, UsageError
from k2lsp.runs import checkpoint
from k2lsp.runs.git import deliver, record_checkpoint, seal_checkpoint, undo
from k2lsp.runs.runcopy import RunCopy

BODY = "".join(f"line {i}\n" for i in range(1, 21))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def run_and_apply(source: Path, state: Path, run_id: str = "r") -> None:
    """A run that modifies, creates (in a new folder), deletes, renames and chmods files."""
    rc = RunCopy.create(source, run_id, state_dir=state)
    write(
        rc.root,
        {"crlf.txt": "changed\r\n", "deep/er/new.txt": "created\n", "img.bin": b"\xff\x00new"},
    )
    (rc.root / "del.txt").unlink()
    os.rename(rc.root / "ren.txt", rc.root / "renamed.txt")
    os.chmod(rc.root / "tool.sh", 0o755)
    d = deliver(rc, rc.changes(), "apply", task="edit")
    assert d.outcome is Outcome.SUCCESS, d.message
    rc.cleanup()


FILES: dict[str, str | bytes] = {
    "crlf.txt": "a\r\nb\r\n",
    "del.txt": "bye\n",
    "ren.txt": BODY,
    "img.bin": b"\xff\x00old",
    "tool.sh": "#!/bin/sh\n",
}


@pytest.mark.parametrize("use_git", [True, False])
def test_undo_after_apply_restores_byte_identical_files(
    tmp_path: Path, state: Path, use_git: bool
) -> None:
    src = tmp_path / "src"
    if use_git:
        make_repo(src, FILES)
        write(src, {"del.txt": "uncommitted edit\n"})
    else:
        write(src, FILES)
    os.chmod(src / "crlf.txt", 0o600)
    before = tree_bytes(src)
    git_before = repo_state(src) if use_git else None
    run_and_apply(src, state)
    assert tree_bytes(src) != before
    result = undo(src, state_dir=state)
    assert tree_bytes(src) == before
    assert not (src / "deep").exists()  # folders the delivery created are gone too
    assert "deep/er/new.txt" in result.deleted and "del.txt" in result.restored
    if use_git:
        assert repo_state(src) == git_before
    with pytest.raises(UsageError, match="nothing to undo"):
        undo(src, state_dir=state)


def test_undo_refuses_when_the_user_changed_a_file_since(tmp_path: Path, state: Path) -> None:
    src = make_repo(tmp_path / "src", FILES)
    before = tree_bytes(src)
    run_and_apply(src, state)
    write(src, {"crlf.txt": "the user's newer work\n"})
    after_user = tree_bytes(src)
    with pytest.raises(EditConflict, match=r"crlf\.txt") as err:
        undo(src)
    assert "--force" in str(err.value)
    assert tree_bytes(src) == after_user  # nothing was restored
    result = undo(src, force=True)
    assert tree_bytes(src) == before and result.checkpoint


def test_undo_refuses_when_a_deleted_file_was_recreated(tmp_path: Path, state: Path) -> None:
    src = make_repo(tmp_path / "src", FILES)
    run_and_apply(src, state)
    write(src, {"del.txt": "recreated by the user\n"})
    with pytest.raises(EditConflict, match=r"del\.txt"):
        undo(src)


def test_cli_undo_lists_restores_and_reports_refusals(
    tmp_path: Path, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_repo(tmp_path / "src", FILES)
    before = tree_bytes(src)
    run_and_apply(src, state, "first")
    assert cli_undo(["--repo", str(src), "--list"]) == 0
    assert "sealed" in capsys.readouterr().out
    write(src, {"renamed.txt": "user\n"})
    assert cli_undo(["--repo", str(src)]) == Outcome.EDIT_CONFLICT.exit_code
    assert "renamed.txt" in capsys.readouterr().err
    write(src, {"renamed.txt": BODY})
    assert cli_undo(["--repo", str(src)]) == 0
    assert "restored" in capsys.readouterr().out
    assert tree_bytes(src) == before
    assert cli_undo(["--repo", str(src)]) == Outcome.USAGE_ERROR.exit_code
    assert cli_undo(["--repo", str(src), "--checkpoint", "nope"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_checkpoint_with_expected_content_for_editor_delivery(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src", {"a.py": "old\n"})
    state = repo_state(src)
    cp = record_checkpoint(
        src, ["a.py", "new.py"], "lsp edit", after={"a.py": "new\n", "new.py": "created\n"}
    )
    assert repo_state(src) == state  # no index, stash, HEAD or branch change
    write(src, {"a.py": "new\n", "new.py": "created\n"})  # what the editor writes
    result = undo(src, cp)
    assert (src / "a.py").read_text() == "old\n" and not (src / "new.py").exists()
    assert result.restored == ["a.py"] and result.deleted == ["new.py"]
    with pytest.raises(UsageError, match="already undone"):
        undo(src, cp)


def test_unfinished_delivery_needs_force(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src", {"a.py": "old\n"})
    cp = record_checkpoint(src, ["a.py"], "crashed delivery")
    write(src, {"a.py": "half written\n"})
    with pytest.raises(EditConflict, match="never completed"):
        undo(src)
    undo(src, cp, force=True)
    assert (src / "a.py").read_text() == "old\n"


def test_seal_then_symlink_and_mode_round_trip(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src", {"target.txt": "t\n", "x.sh": "run\n"})
    os.symlink("target.txt", src / "link")
    os.chmod(src / "x.sh", 0o751)
    before = tree_bytes(src)
    cp = record_checkpoint(src, ["link", "x.sh"], "modes")
    (src / "link").unlink()
    write(src, {"link": "now a file\n", "x.sh": "changed\n"})
    os.chmod(src / "x.sh", 0o644)
    seal_checkpoint(src, cp)
    undo(src, cp)
    assert tree_bytes(src) == before and (src / "link").is_symlink()


def test_checkpoint_paths_are_confined(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src", {"a": "1\n"})
    with pytest.raises(PathError):
        record_checkpoint(src, ["../outside.txt"], "bad")
    assert checkpoint.list_checkpoints(src) == []


def test_undo_in_a_missing_folder_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_undo(["--repo", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(UsageError, match="not a folder"):
        record_checkpoint(tmp_path / "nope", ["a"], "x")


def test_undo_never_touches_another_worktree_of_the_repository(tmp_path: Path) -> None:
    main = make_repo(tmp_path / "main", {"a.py": "old\n"})
    git(main, "worktree", "add", "-q", "-b", "other", str(tmp_path / "other"))
    git(main, "worktree", "add", "-q", "-b", "nested", str(main / "nested"))
    other, nested = tmp_path / "other", main / "nested"
    cp_main = record_checkpoint(main, ["a.py"], "into main")
    write(main, {"a.py": "delivered\n"})
    seal_checkpoint(main, cp_main)
    cp_nested = record_checkpoint(nested, ["a.py"], "into nested")
    write(nested, {"a.py": "delivered nested\n"})
    seal_checkpoint(nested, cp_nested)
    with pytest.raises(UsageError, match="nothing to undo") as err:
        undo(other)
    assert str(main) in str(err.value)  # says where the deliveries went
    with pytest.raises(UsageError, match="--repo"):
        undo(other, cp_main)
    assert checkpoint.list_checkpoints(other) == []
    assert [m["id"] for m in checkpoint.list_checkpoints(main)] == [cp_main]
    assert (main / "a.py").read_text() == "delivered\n"
    assert undo(main).checkpoint == cp_main  # not the newer one of the nested worktree
    assert (main / "a.py").read_text() == "old\n"
    assert (nested / "a.py").read_text() == "delivered nested\n"
    assert (other / "a.py").read_text() == "old\n"
    write(main, {"sub/b.py": "b\n"})
    cp_sub = record_checkpoint(main / "sub", ["b.py"], "into a subfolder")
    seal_checkpoint(main / "sub", cp_sub)
    assert undo(main, cp_sub).checkpoint == cp_sub  # a subfolder of the tree is part of it


def test_checkpoint_before_content_replaces_the_disk(tmp_path: Path) -> None:
    """An editor delivery is computed against the buffer: undo gives the buffer text back."""
    src = make_repo(tmp_path / "src", {"a.py": "on disk\n"})
    os.chmod(src / "a.py", 0o600)
    cp = record_checkpoint(
        src,
        ["a.py", "b.py"],
        "lsp edit",
        before={"a.py": "unsaved buffer\n", "b.py": "open, never saved\n"},
        after={"a.py": "delivered\n", "b.py": "delivered b\n"},
    )
    write(src, {"a.py": "delivered\n", "b.py": "delivered b\n"})  # the user saves both
    result = undo(src, cp)
    assert (src / "a.py").read_text() == "unsaved buffer\n"
    assert (src / "a.py").stat().st_mode & 0o777 == 0o600  # the file's mode is kept
    assert (src / "b.py").read_text() == "open, never saved\n"
    assert result.restored == ["a.py", "b.py"]
