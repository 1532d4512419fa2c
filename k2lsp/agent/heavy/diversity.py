"""Where the N candidates differ, and where they must not.

- Temperature: spread over the range the model and host allow. K2 Thinking (and thinking mode
  of K2.5+) is served at a fixed temperature of 1.0 (lower makes it loop; Moonshot pins it), so
  thinking candidates all sample at 1.0 and differ by plan and by sampling; a model without
  thinking is spread over [profile - 0.3, min(1, profile + 0.2)]. A temperature the user set
  is theirs: every candidate uses it.
- Opening plan: each candidate's first user message ends with a different opening plan. It is
  the LAST thing in the first request, so every candidate's request is byte-identical up to it
  (system prompt, tool list, task, context) and the host's prefix cache serves all N.
- `prefix_identity` measures that from the request bodies the client would send.
"""

from __future__ import annotations

import json
import os
from typing import Any

PLANS: tuple[str, ...] = (
    "Run the tests first to see exactly what fails, then read the code under test.",
    "Read the code the task is about and its callers before running anything.",
    "Start from repo_map for an overview, then narrow down to the few relevant definitions.",
    "Search for the names the task mentions and follow them to where the behaviour lives.",
    "Read the tests first to learn the expected behaviour, then find where the code differs.",
    "Write down the most likely cause first, then confirm or refute it by reading code.",
    "Aim for the smallest change that could work: find the one function to fix.",
    "Think about edge cases the current code mishandles before choosing a fix.",
)
PLAN_HEADER = "Opening plan for this attempt"


def opening_plan(index: int) -> str:
    """The opening plan of candidate `index` (0-based; plans repeat after eight)."""
    return PLANS[index % len(PLANS)]


def plan_context(context: str, index: int) -> str:
    """The request context of candidate `index`: the shared context, then its plan (last)."""
    plan = f"{PLAN_HEADER}: {opening_plan(index)}"
    return f"{context.rstrip()}\n\n{plan}" if context.strip() else plan


def temperature_range(settings: Any) -> tuple[float, float, str]:
    """(low, high, why) of the temperatures candidates may use with `settings`' model."""
    from k2lsp.config.providers import model_profile

    if getattr(settings, "temperature", None) is not None:
        t = float(settings.temperature)
        return t, t, "set by the user"
    profile = model_profile(str(getattr(settings, "model", "")))
    thinking = profile.thinking_switch == "always" or (
        profile.thinking_switch == "extra_body" and getattr(settings, "thinking", None) is not False
    )
    if thinking:
        return profile.temperature, profile.temperature, "fixed by the host for thinking models"
    low = max(0.0, profile.temperature - 0.3)
    return low, min(1.0, profile.temperature + 0.2), "spread within the host's range"


def temperatures(settings: Any, n: int) -> tuple[list[float], str]:
    """One temperature per candidate, evenly spread over `temperature_range`, and why."""
    low, high, why = temperature_range(settings)
    if n <= 1 or high <= low:
        return [round(low, 3)] * n, why
    step = (high - low) / (n - 1)
    return [round(low + i * step, 3) for i in range(n)], why


def prefix_identity(bodies: list[dict[str, Any]]) -> tuple[int, int]:
    """(common, shortest): characters all first-request bodies share from the start, in the
    order a host's prefix cache sees them (tools, then messages), and the shortest's length."""
    texts = [json.dumps([b.get("tools"), b.get("messages")]) for b in bodies]
    if not texts:
        return 0, 0
    return len(os.path.commonprefix(texts)), min(len(t) for t in texts)  # noqa: RUF071
