"""End-to-end: "K2: Refactor across the repository…" (`k2lsp.refactorRepository`) over stdio
against the real server, the fake K2 host and jedi-language-server: the job runs in batches,
reports its progress, and ends with a branch of batch commits; the user's files stay as they
were."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from refactor_helpers import RenameJob

from k2lsp.fake.server import FakeK2Server
from k2lsp.lspc.servers import find_server
from tests.lsp_fixtures import Editor, start_editor, stop_editor

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(find_server("python") is None, reason="no jedi-language-server"),
]
JOB = RenameJob(path="calc.py", old="add", new="plus", batch_files=1)


@pytest.fixture
async def fake() -> AsyncIterator[FakeK2Server]:
    srv = FakeK2Server([], models=["kimi-k2-thinking"])
    srv.responder = JOB.policy
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
async def editor(tmp_path: Path, fake: FakeK2Server) -> AsyncIterator[Editor]:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "use.py").write_text("from calc import add\n\nTOTAL = add(1, 2)\n")
    (root / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(
            ["git", "-C", str(root), "-c", "user.name=u", "-c", "user.email=u@x", *args], check=True
        )
    ed = await start_editor(root, fake.base_url, tmp_path / "home")
    yield ed
    await stop_editor(ed)


async def test_refactor_repository_command_runs_a_job_to_a_branch(editor: Editor) -> None:
    started = await editor.command("k2lsp.refactorRepository", {"instruction": JOB.task})
    assert started == {"started": True}

    def shown() -> list[str]:
        return [m.message for m in editor.client.messages if "Refactor across" in m.message]

    await editor.wait_for(lambda: any("job " in m for m in shown()), timeout=240)
    final = shown()[-1]
    assert "3 batches, 3 files changed on branch k2lsp/" in final and "sites left: 0" in final
    branch = final.split("on branch ")[1].split(";")[0]
    show = subprocess.run(["git", "-C", str(editor.root), "show", f"{branch}:use.py"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "from calc import plus" in show and "plus(1, 2)" in show
    assert "def add(a, b)" in (editor.root / "calc.py").read_text()  # the user's file
    log = subprocess.run(["git", "-C", str(editor.root), "log", "--format=%s", branch],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert log.count(": batch ") == 3
    await asyncio.sleep(0)


async def test_refactor_repository_needs_an_instruction(editor: Editor) -> None:
    with pytest.raises(Exception, match="instruction"):
        await editor.command("k2lsp.refactorRepository", {})


@pytest.mark.parametrize("how", ["command", "k2lsp.cancel"])
async def test_a_running_job_is_cancelled_and_left_resumable(
    editor: Editor, fake: FakeK2Server, how: str
) -> None:
    def holding(body: dict[str, object]) -> object:
        reply = JOB.policy(body)  # type: ignore[arg-type]
        if "BATCH_FILES" in str(body.get("messages")):
            reply.hold = True  # the model is still thinking about batch 1
        return reply

    fake.responder = holding  # type: ignore[assignment]
    assert (await editor.command("k2lsp.refactorRepository", {"instruction": JOB.task}))["started"]
    assert await asyncio.to_thread(fake.wait_held, 120)
    if how == "command":
        answer = await editor.command("k2lsp.refactorRepository", {"cancel": True})
        assert answer == {"cancelled": 1}
    else:  # the editors' generic cancel reaches the job too
        assert await editor.command("k2lsp.cancel", {}) == {"cancelled": [], "jobs": 1}
    fake.release()

    def shown() -> list[str]:
        return [m.message for m in editor.client.messages if "Refactor across" in m.message]

    await editor.wait_for(lambda: any("--resume" in m for m in shown()), timeout=120)
    assert "cancelled" in shown()[-1]
    assert "def add(a, b)" in (editor.root / "calc.py").read_text()
