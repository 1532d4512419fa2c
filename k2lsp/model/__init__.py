"""The K2 client: request building, SSE accumulation, retries, usage and cost.

Public surface (used by the agent loop and the CLI):

    from k2lsp.model import K2Client, AssistantTurn, ToolCall, Usage
    client = K2Client(profile_settings)         # see k2lsp.model.client
    turn = await client.complete(messages, tools, on_delta=cb)
    models = await client.list_models()

`on_delta(kind, text)` receives live `reasoning` / `content` deltas of the current attempt and
`on_retry(attempt, delay_s, reason)` is told when an attempt is thrown away and retried.
"""

from __future__ import annotations

from k2lsp.model.types import AssistantTurn, ToolCall, Usage

__all__ = ["AssistantTurn", "ToolCall", "Usage"]
