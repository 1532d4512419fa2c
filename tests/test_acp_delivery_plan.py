"""ACP delivery through the client's fs methods runs the one planner's steps (`runs.plan`)
and records an undo checkpoint first, like every delivery."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from k2lsp.acp.delivery import _through_client
from k2lsp.cli.undo import cli_undo
from k2lsp.runs.changes import ChangeSet, FileChange


@pytest.mark.asyncio
async def test_client_buffers_are_planned_merged_and_only_changed_files_written(
    tmp_path: Path,
) -> None:
    root = tmp_path.resolve()
    buffers = {
        str(root / "a.py"): "one\ntwo\nthree\nfour\nfive\nUNSAVED\n",  # the user's unsaved edit
        str(root / "same.py"): "done\n",  # already holds the run's result
    }
    writes: list[tuple[str, str]] = []

    async def read(path: str) -> str | None:
        return buffers.get(path)

    async def write(path: str, text: str) -> None:
        writes.append((path, text))
        buffers[path] = text

    changes = ChangeSet(
        [
            FileChange(
                "a.py", "one\ntwo\nthree\nfour\nfive\nsix\n", "ONE\ntwo\nthree\nfour\nfive\nsix\n"
            ),
            FileChange("same.py", "old\n", "done\n"),
            FileChange("new.py", None, "created\n"),
        ]
    )
    state = tmp_path / "state"
    landing = await _through_client(root, changes, SimpleNamespace(state_dir=state), read, write)
    assert landing.status == "applied"
    assert landing.files == ["a.py", "same.py", "new.py"]
    assert dict(writes) == {
        str(root / "a.py"): "ONE\ntwo\nthree\nfour\nfive\nUNSAVED\n",
        str(root / "new.py"): "created\n",
    }
    # checkpointed like any delivery: after the user saves, `k2lsp undo` gives back their text
    for path, text in writes:
        Path(path).write_text(text, encoding="utf-8")
    assert cli_undo(["--repo", str(root), "--state-dir", str(state)]) == 0
    assert (root / "a.py").read_text() == "one\ntwo\nthree\nfour\nfive\nUNSAVED\n"
    assert not (root / "new.py").exists()
