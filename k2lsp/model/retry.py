"""Backoff delays for retried attempts: exponential with full jitter, capped."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, base_s: float, max_s: float, forced_s: float | None = None
) -> float:
    """Delay before retry number `attempt` (1-based); `forced_s` (host's "after N s") wins."""
    if forced_s is not None:
        return max(0.0, forced_s)
    ceiling = min(max_s, base_s * (2 ** (attempt - 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
