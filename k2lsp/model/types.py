"""Value types of the model client shared with the agent loop."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One tool call exactly as received: id and argument string are echoed back verbatim."""

    id: str
    name: str
    arguments: str  # the JSON text echoed back: as streamed, or "{}" when `problem` is set
    # Why the call must not run (arguments not one JSON object, cut by `length`); the text
    # received is kept in `received` for events and trajectories, never sent back to the host.
    problem: str | None = None
    received: str | None = None


@dataclass
class Usage:
    """Token counts of one request (cached tokens are part of prompt tokens) and its cost."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    estimated: bool = False  # counts estimated locally (the host sent no usage)

    def __iadd__(self, other: Usage) -> Usage:
        self.prompt_tokens += other.prompt_tokens
        self.cached_tokens += other.cached_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd
        self.estimated = self.estimated or other.estimated
        return self


@dataclass
class AssistantTurn:
    """One complete assistant reply (a stream that reached [DONE])."""

    reasoning: str | None
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    # Host-specific fields to send back verbatim (e.g. OpenRouter `reasoning_details`).
    extra: dict[str, Any] = field(default_factory=dict)
    # The field reasoning arrived in (`reasoning_content` or `reasoning`); None if it never did.
    reasoning_field: str | None = None
    # Usage of the failed attempts before this reply (each counts toward the budgets).
    failed_attempts: list[Usage] = field(default_factory=list)

    def to_message(self, reasoning_field: str = "reasoning_content") -> dict[str, Any]:
        """The history entry for this reply, as received (content omitted when empty)."""
        msg: dict[str, Any] = {"role": "assistant"}
        if self.content:
            msg["content"] = self.content
        if self.reasoning is not None:
            msg[reasoning_field] = self.reasoning
        if self.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        for key, value in self.extra.items():
            msg[key] = copy.deepcopy(value)
        return msg


@dataclass(frozen=True)
class ModelInfo:
    """One entry of GET /models (context length and reasoning support when the host says)."""

    id: str
    context_length: int | None = None
    supports_reasoning: bool | None = None
    context_source: str | None = None  # where context_length was read (see model/hosts.py)
