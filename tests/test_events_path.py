"""The reasoning delta path: one event object per delta, redacted once, the trajectory flushed
in batches (a crash loses at most the last batch of deltas), secrets never out."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from k2lsp.agent.events import Emitter, Event
from k2lsp.agent.session import redacting
from k2lsp.agent.trajectory import FLUSH_DELTAS
from k2lsp.redact import StreamRedactor, register_secret
from k2lsp.server.stream import coalesce

SECRET = "sk-path-test-0123456789abcdefghij"
ROOT = Path(__file__).resolve().parent.parent


def test_a_delta_reaches_every_sink_as_one_object_and_other_events_are_redacted() -> None:
    register_secret(SECRET)
    got: list[list[Event]] = [[], []]
    emitter = Emitter("r", [redacting([got[0].append, got[1].append])])
    delta = emitter.emit("reasoning", text="plain words ")
    call = emitter.emit("tool_call", id="1", name="read_file", args={"key": SECRET})
    assert got[0][0] is delta and got[1][0] is delta  # passed through, not copied
    assert got[0][1] is not call and SECRET not in json.dumps(got[0][1].to_dict())
    assert got[0][1] is got[1][1]  # redacted once for every sink


def test_stream_redactor_still_catches_keys_split_over_deltas_and_cues() -> None:
    register_secret(SECRET)
    for text in (
        f"thinking about it, the key is {SECRET} and more words follow here ",
        'config: api_key = "Zq81mXr0Pk3vLw9sTn4bYc7dHf2gJa6e" then we go on ',
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789 done ",
    ):
        for size in (1, 3, 7):
            r = StreamRedactor()
            out = "".join(r.feed(text[i : i + size]) for i in range(0, len(text), size))
            out += r.flush()
            assert SECRET not in out
            assert "Zq81mXr0Pk3vLw9sTn4bYc7dHf2gJa6e" not in out
            assert "abcdefghijklmnopqrstuvwxyz0123456789" not in out
            assert "[REDACTED]" in out and out.endswith(text[-6:])


def test_coalesce_joins_a_run_of_deltas_into_one_event() -> None:
    evs = [Event("reasoning", "r", i, {"text": str(i)}, float(i)) for i in range(1, 6)]
    evs.append(Event("tool_call", "r", 6, {"id": "1", "name": "x", "args": {}}, 6.0))
    merged = coalesce(evs)
    assert [(e.type, e.seq) for e in merged] == [("reasoning", 5), ("tool_call", 6)]
    assert merged[0].data["text"] == "12345" and merged[0].ts == 1.0


def test_a_crash_loses_at_most_the_last_batch_of_deltas(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from k2lsp.agent.events import Event
        from k2lsp.agent.trajectory import Trajectory
        t = Trajectory(Path({str(path)!r}))
        seq = 0
        def ev(type_, **data):
            global seq
            seq += 1
            t.event_safe(Event(type_, "r", seq, data))
        for i in range(150):
            ev("reasoning", text=f"d{{i}} ")
        ev("status", step=1, max_steps=5, phase="thinking", message="m")
        for i in range(10):
            ev("content", text=f"c{{i}} ")
        os._exit(1)  # a crash: no close, no flush
        """
    )
    subprocess.run(
        [sys.executable, "-c", script], env={"PYTHONPATH": str(ROOT)}, check=False, timeout=60
    )
    seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
    assert seqs == list(range(1, len(seqs) + 1))  # whole lines, in order
    assert len(seqs) >= 151  # every delta before the status record, and the status record
    assert 161 - len(seqs) < FLUSH_DELTAS  # at most the last batch of deltas is lost


def test_stream_redactor_catches_a_cue_after_a_long_clean_stretch() -> None:
    long_secret = "Qm9vb" + "x7" * 30  # registered, no pattern would find it, > any cue
    register_secret(long_secret)
    clean = "we read the parser and the stack of nodes once more " * 12
    for tail in (
        f"then {long_secret} appears ",
        'and password = "hunter2hunter2hunter2" here ',
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789 done ",
    ):
        text = clean + tail
        for size in (1, 5, 64):
            r = StreamRedactor()
            out = "".join(r.feed(text[i : i + size]) for i in range(0, len(text), size))
            out += r.flush()
            assert out.startswith(clean)
            assert long_secret not in out and "hunter2hunter2" not in out
            assert "abcdefghijklmnopqrstuvwxyz0123456789" not in out
            assert "[REDACTED]" in out
