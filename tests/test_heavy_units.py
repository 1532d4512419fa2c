"""Heavy mode's pure parts: temperatures within the host's range, admission, the shared pool,
the judge's verdict parsing, prefix identity, and the fake host's parallel-stream support."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from k2lsp.agent.heavy.budget import Pool
from k2lsp.agent.heavy.diversity import PLAN_HEADER, plan_context, prefix_identity, temperatures
from k2lsp.agent.heavy.judge import parse_verdict
from k2lsp.agent.heavy.resources import Capacity, admit
from k2lsp.errors import BudgetExhausted
from k2lsp.fake.script import Reply
from k2lsp.fake.streams import PrefixCache, Routes
from k2lsp.model.types import Usage


@pytest.mark.parametrize(
    ("model", "temperature", "thinking", "expected"),
    [
        ("kimi-k2-thinking", None, None, [1.0, 1.0, 1.0]),  # fixed by the host
        ("moonshotai/Kimi-K2-Thinking", None, None, [1.0, 1.0, 1.0]),
        ("kimi-k2.5", None, None, [1.0, 1.0, 1.0]),  # thinking on: fixed too
        ("kimi-k2.5", None, False, [0.7, 0.85, 1.0]),  # thinking off: spread, capped at 1
        ("kimi-k2-instruct", None, None, [0.3, 0.55, 0.8]),
        ("kimi-k2-instruct", 0.2, None, [0.2, 0.2, 0.2]),  # the user's choice wins
    ],
)
def test_temperatures_stay_in_the_hosts_range(
    model: str, temperature: float | None, thinking: bool | None, expected: list[float]
) -> None:
    settings = SimpleNamespace(model=model, temperature=temperature, thinking=thinking)
    temps, _why = temperatures(settings, 3)
    assert temps == pytest.approx(expected)
    assert all(0.0 <= t <= 1.0 for t in temps)


def test_the_plan_is_the_last_part_of_the_context() -> None:
    a, b = plan_context("selected code", 0), plan_context("selected code", 1)
    assert a.startswith("selected code\n\n") and b.startswith("selected code\n\n")
    assert a.index(PLAN_HEADER) == b.index(PLAN_HEADER) and a != b


def test_prefix_identity_counts_the_shared_start() -> None:
    bodies = [{"tools": [1], "messages": [{"content": f"same start {x}"}]} for x in "ab"]
    common, shortest = prefix_identity(bodies)
    text = json.dumps([[1], [{"content": "same start a"}]])
    assert common == text.index(" a") + 1 and shortest == len(text)


@pytest.mark.parametrize(
    ("capacity", "memory_mb", "pids", "at_once"),
    [
        (Capacity("m", 8192, 100_000), 2048, 512, 3),  # 8192 * 0.75 // 2048
        (Capacity("m", 100_000, 1000), 512, 512, 1),  # pids decide
        (Capacity("m", 1000, 1000), 2048, 512, 1),  # not even one fits: one runs anyway
        (Capacity("m", None, None), 2048, 512, 8),  # unknown: no limit
    ],
)
def test_admission_fits_sandboxes_into_free_memory_and_pids(
    capacity: Capacity, memory_mb: int, pids: int, at_once: int
) -> None:
    decided = admit(8, memory_mb, pids, capacity)
    assert decided.at_once == at_once
    assert ("queue" in decided.why) == (at_once < 8)


def test_the_pool_is_shared_by_every_candidate() -> None:
    pool = Pool(max_steps=3, max_tokens=1000)
    a, b = pool.candidate(), pool.candidate()
    assert [a.begin_step(), b.begin_step(), a.begin_step()] == [1, 1, 2]
    with pytest.raises(BudgetExhausted, match="over all candidates"):
        b.begin_step()
    pool2 = Pool(max_tokens=1000)
    c, d = pool2.candidate(), pool2.candidate()
    c.add_usage(Usage(prompt_tokens=900, completion_tokens=50))
    d.add_usage(Usage(prompt_tokens=40, completion_tokens=20))
    assert c.used.prompt_tokens == 900 and pool2.total_tokens == 1010
    with pytest.raises(BudgetExhausted, match="token budget"):
        d.check()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('B is better.\n{"winner": "B", "reason": "handles 0"}', ("B", "handles 0")),
        ('{"winner": "A", "reason": "x"} then {"winner": "tie", "reason": "y"}', ("tie", "y")),
        ('```json\n{"winner":"a","reason":"lower case"}\n```', ("A", "lower case")),
        ("I cannot decide.", ("tie", "the judge's reply had no readable verdict")),
        ('{"winner": "C"}', ("tie", "the judge's reply had no readable verdict")),
    ],
)
def test_judge_verdicts_are_read_tolerantly(text: str, expected: tuple[str, str]) -> None:
    assert parse_verdict(text) == expected


def test_routes_pick_the_script_whose_marker_is_in_the_messages() -> None:
    routes = Routes()
    one, two = Reply(content="1"), Reply(content="2")
    routes.add("PLAN-A", one)
    routes.add("PLAN-B", two)
    default: list = []
    body = {"messages": [{"role": "user", "content": "task ... PLAN-B"}]}
    assert routes.pick(body, default) == [two]
    assert routes.pick({"messages": [{"role": "user", "content": "other"}]}, default) is default


def test_shared_prefix_cache_serves_parallel_streams() -> None:
    system = {"role": "system", "content": "x" * 4000}
    a = {"tools": [], "messages": [system, {"role": "user", "content": "A" + "y" * 1000}]}
    b = {"tools": [], "messages": [system, {"role": "user", "content": "B" + "y" * 1000}]}
    a2 = {"tools": [], "messages": [*a["messages"], {"role": "assistant", "content": "ok"}]}
    shared, last = PrefixCache("shared"), PrefixCache("last")
    # b shares the system prompt with a; a's next step shares all of a (not only with b)
    assert [shared.cached_tokens(x) for x in (a, b, a2)] == [0, 960, 1216]
    assert [last.cached_tokens(x) for x in (a, b, a2)] == [0, 960, 960]
