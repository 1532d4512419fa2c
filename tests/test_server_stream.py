"""End-to-end: how a run streams to the editor (custom batches, progress, log, transcript), and a
strict client with no custom capability that must get everything over standard LSP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lsprotocol import types

from k2lsp.agent.events import Event
from k2lsp.fake.server import FakeK2Server, Reply
from k2lsp.server.stream import coalesce
from tests.lsp_fixtures import (
    API_KEY,
    FIX_ADD,
    capabilities,
    make_project,
    start_editor,
    stop_editor,
)

pytestmark = pytest.mark.timeout(180)
REASONING = "".join(
    f"Step {i}: checking how add behaves with {i} and {i + 1}.\n" for i in range(40)
)


async def test_stream_batches_are_ordered_coalesced_and_lose_nothing(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    root = make_project(tmp_path / "proj")
    fake.add(
        Reply(reasoning=REASONING, tool_calls=[FIX_ADD], chunk_size=4, delay_s=0.002),
        Reply(reasoning="Now it adds.", content="Fixed add.", chunk_size=3),
    )
    ed = await start_editor(root, fake.base_url, tmp_path / "home")
    try:
        ed.open("calc.py")
        run_id = (await ed.command("k2lsp.task", {"task": "fix add"}))["runId"]
        await ed.finished(run_id)
        await ed.wait_for(lambda: any(e["type"] == "run_finished" for e in ed.events(run_id)))
    finally:
        await stop_editor(ed)
    events = ed.events(run_id)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(batch["runId"] == run_id for batch in ed.stream)
    reasoning = "".join(e["text"] for e in events if e["type"] == "reasoning")
    assert reasoning == REASONING + "Now it adds."
    assert "".join(e["text"] for e in events if e["type"] == "content") == "Fixed add."
    chunks = len(REASONING) // 4
    assert sum(e["type"] == "reasoning" for e in events) < chunks / 2  # deltas were merged
    assert len(ed.stream) < chunks / 2  # batched, not one notification per delta
    order = [
        e["type"]
        for e in events
        if e["type"] in ("run_started", "tool_call", "edit", "tool_result", "run_finished")
    ]
    assert order == ["run_started", "tool_call", "edit", "tool_result", "run_finished"]
    assert events[-1]["type"] == "run_finished" and events[-1]["outcome"] == "success"
    kinds = [kind for kind, _ in ed.timeline]
    assert kinds.count("delivery") == 1 and kinds[-1] == "stream"
    after = ed.timeline[kinds.index("delivery") + 1 :]
    assert [e["type"] for _, batch in after for e in batch["events"]] == ["run_finished"]


def test_coalesce_merges_only_neighbouring_deltas_of_one_kind() -> None:
    evs = [
        Event("reasoning", "r", 1, {"text": "a"}),
        Event("reasoning", "r", 2, {"text": "b"}),
        Event("content", "r", 3, {"text": "c"}),
        Event("reasoning", "r", 4, {"text": "d"}),
        Event("tool_call", "r", 5, {"id": "1", "name": "x", "args": {}}),
        Event("reasoning", "r", 6, {"text": "e"}),
    ]
    out = coalesce(evs)
    assert [(e.type, e.seq, e.data.get("text")) for e in out] == [
        ("reasoning", 2, "ab"),
        ("content", 3, "c"),
        ("reasoning", 4, "d"),
        ("tool_call", 5, None),
        ("reasoning", 6, "e"),
    ]


async def test_progress_log_and_transcript_follow_the_run(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    root = make_project(tmp_path / "proj")
    fake.add(
        Reply(
            reasoning="First I read the file.\nThen I fix it.",
            tool_calls=[("read_file", {"path": "calc.py"})],
            prompt_tokens=900,
            completion_tokens=40,
        ),
        Reply(reasoning="fixing", tool_calls=[FIX_ADD]),
        Reply(reasoning="done", content="All good."),
    )
    ed = await start_editor(root, fake.base_url, tmp_path / "home")
    try:
        started = await ed.command("k2lsp.task", {"task": "fix add"})
        run_id = started["runId"]
        await ed.finished(run_id)
        token = f"k2lsp-{run_id}"
        await ed.wait_for(
            lambda: any(
                isinstance(v, types.WorkDoneProgressEnd)
                for v in ed.client.progress_reports.get(token, [])
            )
        )
    finally:
        await stop_editor(ed)
    reports = ed.client.progress_reports[token]
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].cancellable
    messages = [r.message or "" for r in reports if isinstance(r, types.WorkDoneProgressReport)]
    assert any("reading calc.py" in m for m in messages)
    # Reports are coalesced (one per ~50 ms batch), so which steps show depends on speed:
    # check that step numbers only grow, reach a later step, and carry tokens and cost.
    steps = [int(m.group(1)) for m in map(re.compile(r"step (\d+)").search, messages) if m]
    assert steps == sorted(steps) and steps[-1] >= 2
    assert any("tokens" in m and "$" in m for m in messages if "step " in m)
    assert isinstance(reports[-1], types.WorkDoneProgressEnd) and "success" in reports[-1].message
    logs = ed.logs()
    assert f"[k2lsp {run_id}] thinking: First I read the file." in logs
    assert f"[k2lsp {run_id}] thinking: Then I fix it." in logs
    assert f'[k2lsp {run_id}] tool read_file {{"path": "calc.py"}}' in logs
    assert f"[k2lsp {run_id}] finished: success - All good." in logs
    transcript = Path(started["transcriptUri"].removeprefix("file://"))
    assert started["transcriptUri"] in [d.uri for d in ed.client.shown_documents]
    md = transcript.read_text()
    assert md.index("First I read the file.") < md.index("**read_file**") < md.index("```diff")
    assert "+    return a + b" in md and "## success" in md and "All good." in md
    shown = [logs, md, repr(ed.stream), repr(ed.client.messages), repr(reports)]
    assert not any(API_KEY in text for text in shown)  # the key never leaks to the editor


async def test_client_without_custom_capability_gets_standard_lsp_only(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    root = make_project(tmp_path / "proj")
    fake.add(
        Reply(reasoning="thinking about add", tool_calls=[FIX_ADD]),
        Reply(reasoning="ok", content="Fixed."),
    )
    caps = capabilities(stream=False, document_changes=False, resource_ops=False)
    ed = await start_editor(root, fake.base_url, tmp_path / "home", stream=False, caps=caps)
    try:
        uri = ed.open("calc.py")
        run_id = (await ed.command("k2lsp.task", {"task": "fix add"}))["runId"]
        info = await ed.finished(run_id)
    finally:
        await stop_editor(ed)
    assert info["delivery"] == "applied"
    assert ed.stream == [] and ed.deliveries == []  # no custom notification at all
    edit = ed.applied[0]
    assert edit.document_changes is None and list(edit.changes or {}) == [uri]
    assert "return a + b" in ed.text("calc.py")
    assert f"k2lsp-{run_id}" in ed.client.progress_reports
    assert "thinking: thinking about add" in ed.logs()
    assert any("K2 changed 1 file" in m.message for m in ed.client.messages)


@pytest.mark.parametrize("client", ["neovim@v0.11.0", "visual_studio_code", "emacs"])
async def test_real_editor_capabilities_without_opt_in_use_standard_lsp(
    tmp_path: Path, fake: FakeK2Server, client: str
) -> None:
    from pytest_lsp.client import client_capabilities

    fake.add(Reply(reasoning="fix", tool_calls=[FIX_ADD]), Reply(reasoning="ok", content="Fixed."))
    caps = client_capabilities(client)
    ed = await start_editor(
        make_project(tmp_path / "proj"), fake.base_url, tmp_path / "home", stream=False, caps=caps
    )
    try:
        ed.open("calc.py")
        run_id = (await ed.command("k2lsp.task", {"task": "fix add"}))["runId"]
        info = await ed.finished(run_id)
    finally:
        await stop_editor(ed)
    assert info["delivery"] == "applied" and "return a + b" in ed.text("calc.py")
    assert ed.stream == [] and ed.deliveries == []
    progress = bool(caps.window and caps.window.work_done_progress)
    assert (f"k2lsp-{run_id}" in ed.client.progress_reports) == progress


async def test_transcript_and_reasoning_log_can_be_turned_off(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="secret plan\n", content="Answer."))
    options = {"transcript": False, "logReasoning": False}
    ed = await start_editor(
        make_project(tmp_path / "proj"), fake.base_url, tmp_path / "home", init_options=options
    )
    try:
        started = await ed.command("k2lsp.ask", {"question": "q?"})
        await ed.finished(started["runId"])
    finally:
        await stop_editor(ed)
    assert started["transcriptUri"] == "" and ed.client.shown_documents == []
    assert "secret plan" not in ed.logs() and "answer: Answer." in ed.logs()
    assert any(e["type"] == "reasoning" for e in ed.events())  # the stream still carries it
