"""Cost of a request from its usage and a price table (USD per 1M tokens).

Cached prompt tokens are part of `prompt_tokens` and priced at the cache-hit rate; reasoning
tokens are part of `completion_tokens` and priced as output.
"""

from __future__ import annotations

from collections.abc import Mapping

from k2lsp.model.types import Usage


def cost_usd(usage: Usage, prices: Mapping[str, float]) -> float:
    """USD cost of `usage` under `prices` (`input_cache_hit`, `input`, `output`)."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    fresh = usage.prompt_tokens - cached
    hit = prices.get("input_cache_hit", prices.get("input", 0.0))
    total = fresh * prices.get("input", 0.0) + cached * hit
    total += usage.completion_tokens * prices.get("output", 0.0)
    return total / 1_000_000
