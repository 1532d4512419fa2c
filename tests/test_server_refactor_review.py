"""End-to-end: a refactor job finished in an editor that reviews per hunk is offered as ONE
multi-file `k2lsp/review` of the job branch (each file labelled with its batch); accepting one
file and rejecting the others lands exactly the accepted file's change in the user's buffers,
through the one delivery loop, and saves the rest as a patch."""

from __future__ import annotations

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
FILES = {
    "calc.py": "def add(a, b):\n    return a + b\n",
    "use.py": "from calc import add\n\nTOTAL = add(1, 2)\n",
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}


@pytest.fixture
async def editor(tmp_path: Path) -> AsyncIterator[Editor]:
    fake = FakeK2Server([], models=["kimi-k2-thinking"])
    fake.responder = JOB.policy
    fake.start()
    root = tmp_path / "proj"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(
            ["git", "-C", str(root), "-c", "user.name=u", "-c", "user.email=u@x", *args], check=True
        )
    options = {"reviewHunks": True}
    ed = await start_editor(root, fake.base_url, tmp_path / "home", init_options=options)
    yield ed
    await stop_editor(ed)
    fake.stop()


async def test_a_finished_job_is_one_review_decided_per_file(editor: Editor) -> None:
    editor.open("use.py")  # an open buffer gets the edit; the others are written on disk
    assert (await editor.command("k2lsp.refactorRepository", {"instruction": JOB.task}))["started"]
    await editor.wait_for(lambda: any(r["runId"].startswith("job-") for r in editor.reviews), 240)
    review = next(r for r in editor.reviews if r["runId"].startswith("job-"))
    by_path = {f["path"]: f for f in review["files"]}
    assert set(by_path) == set(FILES)
    assert all(f["group"].startswith("batch ") for f in by_path.values())
    assert len({f["group"] for f in by_path.values()}) == 3  # one batch per file here
    assert editor.applied == []  # nothing lands before the user decides

    with pytest.raises(Exception, match="no file"):
        await editor.command("k2lsp.accept", {"runId": review["runId"], "files": ["nope.py"]})
    answer = await editor.command("k2lsp.accept", {"runId": review["runId"], "files": ["use.py"]})
    use_hunks = [h["id"] for h in by_path["use.py"]["hunks"]]
    assert answer["accepted"] == use_hunks and answer["conflicts"] == []
    rest = ["calc.py", "test_calc.py"]
    answer = await editor.command("k2lsp.reject", {"runId": review["runId"], "files": rest})
    assert answer["pending"] == []
    info = await editor.finished(review["runId"])
    assert info["delivery"] == "applied"

    assert editor.text("use.py") == "from calc import plus\n\nTOTAL = plus(1, 2)\n"
    for name in rest:  # rejected: exactly as before
        assert (editor.root / name).read_text() == FILES[name]
    final = [d for d in editor.deliveries if d["runId"] == review["runId"]][-1]
    assert "in use.py" in final["message"] and "rejected" in final["message"]


async def test_the_generic_cancel_ends_a_job_review_and_lands_nothing(editor: Editor) -> None:
    assert (await editor.command("k2lsp.refactorRepository", {"instruction": JOB.task}))["started"]
    await editor.wait_for(lambda: any(r["runId"].startswith("job-") for r in editor.reviews), 240)
    run_id = next(r for r in editor.reviews if r["runId"].startswith("job-"))["runId"]
    answer = await editor.command("k2lsp.cancel", {})
    assert answer["cancelled"] == [run_id] and "jobs" not in answer  # the job itself is over
    info = await editor.finished(run_id)
    assert info["state"] == "cancelled" and editor.applied == []
    for name, text in FILES.items():
        assert (editor.root / name).read_text() == text
    assert any("review cancelled; the branch k2lsp/" in m.message for m in editor.client.messages)
