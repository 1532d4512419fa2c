"""Accounting and limits for failed attempts: every attempt's tokens count, and a host-forced
delay above the cap ends the attempt instead of being slept.

A failed attempt's usage is the host's own `usage` when it arrived before the failure;
otherwise it is estimated (prompt from its size in JSON characters, completion at 4 characters
per token of what was streamed) and marked `estimated`. An attempt the host refused with a 4xx
before doing any work (overflow, rate limit, auth) costs nothing.
"""

from __future__ import annotations

from typing import Any

from k2lsp.errors import RetryDelayTooLong
from k2lsp.model.cost import cost_usd
from k2lsp.model.stream import Accumulator
from k2lsp.model.types import Usage

DEFAULT_MAX_RETRY_AFTER_S = 120.0


def _streamed(acc: Accumulator) -> bool:
    return bool(
        acc.reasoning_parts is not None
        or acc.content_parts
        or acc.slots
        or acc.usage is not None
        or acc.finish_reason
    )


def failed_attempt_usage(
    acc: Accumulator | None,
    status: int | None,
    prompt_estimate: int,
    prices: dict[str, float],
) -> Usage | None:
    """What a failed attempt used (None when the host did no work for it)."""
    if acc is not None and acc.usage is not None:
        raw = acc.usage
        details = raw.get("prompt_tokens_details") or {}
        usage = Usage(
            int(raw.get("prompt_tokens") or 0),
            int(raw.get("cached_tokens") or details.get("cached_tokens") or 0),
            int(raw.get("completion_tokens") or 0),
        )
    elif (acc is not None and _streamed(acc)) or (status is not None and status >= 500):
        text = ""
        if acc is not None:
            text = (acc.reasoning or "") + acc.content + "".join(c[2] for c in acc.calls())
        usage = Usage(prompt_estimate, 0, len(text) // 4, estimated=True)
    else:
        return None
    usage.cost_usd = cost_usd(usage, prices)
    return usage


def check_retry_delay(delay_s: float | None, cap_s: float, reason: str, status: Any) -> None:
    """Raise RetryDelayTooLong when the host asks to wait longer than `cap_s` seconds."""
    if delay_s is None or delay_s <= cap_s:
        return
    raise RetryDelayTooLong(
        f"The model host asked to wait {delay_s:.0f} s before retrying ({reason}), more than "
        f"the {cap_s:.0f} s k2lsp waits (`max_retry_after_s`). Try again later, raise "
        "`max_retry_after_s`, or switch provider.",
        delay_s=delay_s,
        status=status if isinstance(status, int) else None,
    )
