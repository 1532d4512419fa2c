"""Conversations headless: `k2lsp --task ... --continue [ID]` against the fake K2 server (real
HTTP, real git): the follow-up's request carries the earlier history (reasoning included), the
run copy and its changes carry over, delivery builds on what was delivered, and a conversation
that cannot be continued says why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import make_k2_env

from k2lsp.agent.compaction import NOTE_MARK
from k2lsp.errors import UsageError
from k2lsp.fake.script import Reply
from k2lsp.fake.server import FakeK2Server

pytestmark = pytest.mark.timeout(300)
K2LSP = [sys.executable, "-m", "k2lsp"]
CALC = "def add(a, b):\n    return a - b\n"
READ = ("read_file", {"path": "calc.py"})
FIX = ("edit_file", {"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"})
NEG = (
    "edit_file",
    {
        "path": "calc.py",
        "old_text": "    return a + b\n",
        "new_text": (
            "    if a < 0 or b < 0:\n        raise ValueError('negative')\n    return a + b\n"
        ),
    },
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "proj"
    repo.mkdir()
    (repo / "calc.py").write_text(CALC)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    return repo


def run(
    tmp_path: Path, srv: FakeK2Server, repo: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    e = make_k2_env(srv.base_url)
    e.update(K2LSP_STATE_DIR=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    e.pop("CI", None)
    e.update(env)
    cmd = [*K2LSP, "--repo", str(repo), "--sandbox", "none", *args]
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=240)


def started(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(proc.stdout.splitlines()[0])


def test_continue_sends_the_history_and_builds_on_the_delivered_change(
    repo: Path, tmp_path: Path
) -> None:
    with FakeK2Server([], models=["kimi-k2-thinking"]) as srv:
        srv.add(
            Reply(reasoning="add subtracts; fix it.", tool_calls=[FIX]),
            Reply(reasoning="Done.", content="add now adds."),
        )
        first = run(tmp_path, srv, repo, "--task", "fix add", "--output", "apply")
        assert first.returncode == 0, first.stderr
        assert "return a + b" in (repo / "calc.py").read_text()
        assert "--continue" in first.stderr
        srv.add(
            Reply(reasoning="Now guard negatives.", tool_calls=[READ, NEG]),
            Reply(reasoning="ok", content="negatives raise now."),
        )
        (repo / "notes.txt").write_text("negatives must raise ValueError\n")
        (repo / "calc.py").write_text("# the user's line\n" + (repo / "calc.py").read_text())
        second = run(
            tmp_path,
            srv,
            repo,
            "--task",
            "now also handle negatives",
            "--continue",
            "--json",
            "--context-file",
            "notes.txt",
        )
        assert second.returncode == 0, second.stderr
        assert srv.rejected == []
    body = srv.requests[2]["messages"]  # the follow-up's first request
    assert body[:2] == srv.requests[0]["messages"][:2]  # same system prompt and first task
    replies = [m for m in body if m["role"] == "assistant"]
    assert replies[0]["reasoning_content"] == "add subtracts; fix it."
    assert replies[0]["tool_calls"][0]["function"]["name"] == "edit_file"
    assert replies[1]["content"] == "add now adds."
    assert any(m["role"] == "tool" for m in body)
    assert body[-1]["role"] == "user" and "now also handle negatives" in body[-1]["content"]
    assert (
        "File notes.txt:" in body[-1]["content"] and "must raise ValueError" in body[-1]["content"]
    )
    conv = started(second)["conversation"]
    assert conv and conv != started(second)["run_id"]  # a turn of the first run's conversation
    text = (repo / "calc.py").read_text()
    assert text.startswith("# the user's line\n")
    assert "return a + b" in text and "raise ValueError('negative')" in text
    assert git(repo, "status", "--porcelain").splitlines() == [" M calc.py", "?? notes.txt"]
    # the follow-up's copy held the first turn's change and the user's edits since (read_file)
    read, edited = [m for m in srv.requests[3]["messages"] if m["role"] == "tool"][-2:]
    assert "# the user's line" in read["content"] and "return a + b" in read["content"]
    assert edited["content"].startswith("Edited calc.py")
    events = [json.loads(line) for line in second.stdout.splitlines()]
    caught = [e["message"] for e in events if e["type"] == "status" and e["phase"] == "catch_up"]
    assert caught and "calc.py" in caught[0] and "notes.txt" in caught[0]
    assert "re-read them" in body[-1]["content"]  # the model is told too
    assert [e for e in events if e["type"] == "edit"][-1]["path"] == "calc.py"
    # its branch is kept while the conversation is, and goes with it (the base moved meanwhile)
    assert git(repo, "branch", "--list", "k2lsp/*").strip() == f"k2lsp/{conv}"
    gc = subprocess.run(
        [*K2LSP, "gc", "--state-dir", str(tmp_path / "state"), "--conversations"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gc.returncode == 0 and git(repo, "branch", "--list", "k2lsp/*").strip() == ""


def test_undelivered_turns_are_delivered_cumulatively(repo: Path, tmp_path: Path) -> None:
    with FakeK2Server([], models=["kimi-k2-thinking"]) as srv:
        srv.add(Reply(reasoning="fix", tool_calls=[FIX]), Reply(reasoning="ok", content="fixed"))
        first = run(tmp_path, srv, repo, "--task", "fix add", "--output", "patch")
        assert first.returncode == 0 and "+    return a + b" in first.stdout
        neg = ("create_file", {"path": "neg.py", "content": "def neg(a):\n    return -a\n"})
        srv.add(Reply(reasoning="neg", tool_calls=[neg]), Reply(reasoning="ok", content="done"))
        patch = tmp_path / "turn2.patch"
        second = run(
            tmp_path,
            srv,
            repo,
            "--task",
            "negatives",
            "--continue",
            "--output",
            "patch",
            "--patch-file",
            str(patch),
            "--json",
        )
    assert second.returncode == 0, second.stderr
    text = patch.read_text()
    assert "-    return a - b" in text and "+def neg(a):" in text
    events = [json.loads(line) for line in second.stdout.splitlines()]
    notes = [e for e in events if e["type"] == "status" and e.get("phase") == "change_set"]
    assert notes == []  # the first turn's change is the conversation's, not a command's
    assert (repo / "calc.py").read_text() == CALC  # patches never touch the tree


def test_compaction_still_applies_to_a_continued_history(repo: Path, tmp_path: Path) -> None:
    big = "x" * 30_000
    with FakeK2Server([], models=["kimi-k2-thinking"]) as srv:
        srv.add(
            Reply(reasoning="look " + big, tool_calls=[("read_file", {"path": "calc.py"})]),
            Reply(reasoning="ok " + big, content="It subtracts."),
        )
        first = run(tmp_path, srv, repo, "--task", "what does add do?", "--mode", "ask")
        assert first.returncode == 0, first.stderr
        srv.add(Reply(reasoning="short", content="Use a + b."))
        second = run(
            tmp_path,
            srv,
            repo,
            "--task",
            "and how do I fix it?",
            "--mode",
            "ask",
            "--continue",
            K2LSP_CONTEXT_LENGTH="40000",
        )
    assert second.returncode == 0, second.stderr
    body = srv.requests[2]["messages"]
    assert any(NOTE_MARK in str(m.get("content")) for m in body)  # compacted
    assert "what does add do?" in body[1]["content"]  # the first task survives verbatim
    assert "and how do I fix it?" in json.dumps(body)  # and so does the follow-up


def test_unknown_and_collected_conversations_are_clear_errors(repo: Path, tmp_path: Path) -> None:
    with FakeK2Server([], models=["kimi-k2-thinking"]) as srv:
        none_yet = run(tmp_path, srv, repo, "--task", "more", "--continue")
        assert none_yet.returncode == 2 and "no conversation to continue" in none_yet.stderr
        outside = run(tmp_path, srv, repo, "--task", "x", "--context-file", "../proj/../x.py")
        assert outside.returncode == 2 and "outside the workspace" in outside.stderr
        unknown = run(tmp_path, srv, repo, "--task", "more", "--continue", "20990101-nope")
        assert unknown.returncode == 2 and "unknown conversation '20990101-nope'" in unknown.stderr
        bad = run(tmp_path, srv, repo, "--task", "more", "--continue", "../../etc/passwd")
        assert bad.returncode == 2 and "not a conversation id" in bad.stderr
        srv.add(Reply(reasoning="ok", content="It subtracts."))
        first = run(tmp_path, srv, repo, "--task", "what?", "--mode", "ask", "--json")
        conv = started(first)["conversation"]
        state = tmp_path / "state"
        assert (state / "runs" / conv / "run.json").is_file()  # parked for the follow-up
        gc = subprocess.run(
            [*K2LSP, "gc", "--state-dir", str(state), "--conversations"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert gc.returncode == 0 and not (state / "runs" / conv).exists()
        gone = run(tmp_path, srv, repo, "--task", "more", "--continue", conv)
    assert gone.returncode == 2
    assert f"conversation '{conv}' can no longer be continued" in gone.stderr
    assert "collected" in gone.stderr
    assert len(srv.requests) == 1  # no failed follow-up reached the model
    branches = git(repo, "branch", "--list", "k2lsp/*").strip()
    assert branches == ""  # the collected conversation's branch went with it


# ---- the store and gc, against real run copies ----------------------------------------------
def park_conversation(repo: Path, state: Path, conv_id: str, age_days: float = 0.0) -> None:
    """A run copy of `repo` parked as conversation `conv_id`, last updated `age_days` ago."""
    import time

    from k2lsp.runs import conversations
    from k2lsp.runs.runcopy import RunCopy

    copy = RunCopy.create(repo, conv_id, state_dir=state)
    conv = conversations.Conversation(
        id=conv_id, repo=str(repo.resolve()), run_dir=str(copy.run_dir)
    )
    conv.messages = [{"role": "user", "content": "hi"}]
    conv.updated = time.time() - age_days * 86400
    conversations.save(state, conv)
    conversations.park(copy)


def test_gc_keeps_the_recent_conversations_of_each_workspace(repo: Path, tmp_path: Path) -> None:
    from k2lsp.runs import conversations
    from k2lsp.runs import gc as rgc
    from k2lsp.runs.runcopy import RunCopy

    state = tmp_path / "state"
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.py").write_text("x = 1\n")
    for n, age in enumerate([0.1, 0.2, 0.3]):
        park_conversation(repo, state, f"c{n}", age)
    park_conversation(repo, state, "old", 9.0)  # past conversation_days
    park_conversation(other, state, "o1", 0.5)  # another workspace: its own quota
    live = RunCopy.create(repo, "live", state_dir=state)  # a run going on: never touched
    try:
        done = rgc.collect(state, keep_conversations=2, conversation_days=7)
        runs = sorted(p.name for p in (state / "runs").iterdir())
        assert runs == ["c0", "c1", "live", "o1"], done
        assert conversations.latest(state, repo) == "c0"
        assert conversations.latest(state, other) == "o1"
        for gone in ("c2", "old"):
            record = conversations.read(state, gone)
            assert record is not None and record.messages == [] and "collected" in record.collected
            with pytest.raises(UsageError, match="can no longer be continued"):
                conversations.load(state, gone, repo)
        assert git(repo, "branch", "--list", "k2lsp/*").split() == [
            "k2lsp/c0",
            "k2lsp/c1",
            "k2lsp/live",
        ]
        with pytest.raises(UsageError, match="belongs to"):
            conversations.load(state, "o1", repo)
    finally:
        live.cleanup()


def test_a_conversation_in_use_is_busy_and_a_damaged_record_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    from k2lsp.runs import conversations

    state = tmp_path / "state"
    park_conversation(repo, state, "c1")
    conv = conversations.load(state, "c1", repo)
    copy = conversations.resume(conv)  # this run holds it now
    try:
        with pytest.raises(UsageError, match="is busy"):
            conversations.resume(conversations.load(state, "c1", repo))
    finally:
        conversations.park(copy)
    conv.run_dir = str(tmp_path)  # a record pointing elsewhere is never followed
    conversations.save(state, conv)
    with pytest.raises(UsageError, match="damaged record"):
        conversations.load(state, "c1", repo)


def test_conversation_records_are_redacted_and_private(repo: Path, tmp_path: Path) -> None:
    from k2lsp.redact import register_secret
    from k2lsp.runs import conversations

    state = tmp_path / "state"
    key = "sk-live-0123456789abcdefABCDEF0123"
    register_secret(key)
    conv = conversations.Conversation(id="c1", repo=str(repo), run_dir=str(state / "runs" / "c1"))
    conv.messages = [{"role": "tool", "tool_call_id": "t", "content": f"KEY={key}"}]
    path = conversations.save(state, conv)
    assert key not in path.read_text() and (path.stat().st_mode & 0o777) == 0o600


def test_catch_up_takes_only_files_the_conversation_left_alone(repo: Path, tmp_path: Path) -> None:
    from k2lsp.runs.catchup import catch_up
    from k2lsp.runs.runcopy import RunCopy

    (repo / "other.py").write_text("x = 1\n")
    (repo / "gone.py").write_text("y = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "more")
    copy = RunCopy.create(repo, "c1", state_dir=tmp_path / "state")
    try:
        (copy.root / "calc.py").write_text("def add(a, b):\n    return a + b\n")  # the model's
        (repo / "calc.py").write_text("# mine\n" + CALC)  # both changed calc.py
        (repo / "other.py").write_text("x = 2\n")  # only the user: taken
        (repo / "gone.py").unlink()  # a deletion: taken
        taken = catch_up(copy, {"new.py": "z = 1\n"})  # an unsaved buffer: taken
        assert sorted(taken) == ["gone.py", "new.py", "other.py"]
        assert (copy.root / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
        assert (copy.root / "other.py").read_text() == "x = 2\n"
        assert not (copy.root / "gone.py").exists()
        assert (copy.root / "new.py").read_text() == "z = 1\n"
        changes = copy.changes()
        assert changes.paths() == ["calc.py"]  # only the conversation's own change is delivered
        assert changes.files[0].old_text == CALC  # against the base the user had for that file
        assert catch_up(copy, {"new.py": "z = 1\n"}) == []  # nothing new the second time
    finally:
        copy.cleanup()
    assert git(repo, "branch", "--list", "k2lsp/*").strip() == ""
