"""Self-hosted K2 servers (llama.cpp, vLLM, SGLang, Ollama, LM Studio) beside the hosted APIs.

Each host reports the context window its own way; this module reads every known shape and
records where the number came from, and recognises each host's context-overflow and
"history it cannot parse" errors so the client can map them to typed errors:

- llama.cpp `llama-server`: window in `GET /v1/models` `data[].meta.n_ctx` (per slot);
  overflow = 400 `exceed_context_size_error` "request (N tokens) exceeds the available context
  size (M tokens)".
- vLLM: `data[].max_model_len`; overflow = 400 "This model's maximum context length is M
  tokens. However, you requested …".
- SGLang: `data[].max_model_len`; overflow = 400 "Requested token count exceeds the model's
  maximum context length of M tokens …" (older: "… longer than the model's context length").
- Ollama: `POST /api/show` `model_info["<arch>.context_length"]` (`num_ctx` in `parameters`
  when set); no overflow error: Ollama truncates the prompt silently.
- LM Studio: `GET /api/v0/models` `data[].loaded_context_length` / `max_context_length`;
  overflow = "… the model is loaded with context length of only M tokens …".
- OpenRouter and other APIs: `data[].context_length` (OpenRouter also `top_provider`);
  overflow = OpenAI-style `context_length_exceeded`.

llama.cpp answers HTTP 500 "Failed to parse tool call arguments as JSON" to every request whose
history holds an assistant tool call with arguments that are not exactly one JSON object: that
request can never succeed as it is, so it is a `HistoryRejected`, never a transient 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

Fetch = Callable[[str, str, Any], Awaitable[Any]]
HOSTS = ("llamacpp", "vllm", "sglang", "ollama", "lmstudio")

# Lower-case fragments of the error type or message that mean "the prompt does not fit".
OVERFLOW_MARKERS = (
    "input token length too long",  # Moonshot
    "exceeded model token limit",  # Moonshot
    "context_length_exceeded",  # OpenAI-style code
    "exceed_context_size_error",  # llama.cpp type
    "exceeds the available context size",  # llama.cpp message
    "maximum context length",  # vLLM, SGLang, OpenAI
    "longer than the model's context length",  # SGLang (older)
    "context length of only",  # LM Studio
    "context the overflows",  # LM Studio (sic)
    "prompt is too long",  # Anthropic-style proxies
    "context length",  # generic ("… exceeds the context length …")
    "maximum context",  # generic
)
# Fragments of an error that says the conversation's history itself cannot be rendered.
HISTORY_MARKERS = (
    "failed to parse tool call arguments",  # llama.cpp (500)
    "tool call arguments as json",
)


def is_overflow(text: str) -> bool:
    """Whether an error type/message (any case) reports a context overflow."""
    low = text.lower()
    return any(m in low for m in OVERFLOW_MARKERS)


def is_history_rejected(text: str) -> bool:
    """Whether an error says the history (a tool call's arguments) cannot be parsed."""
    low = text.lower()
    return any(m in low for m in HISTORY_MARKERS)


_PROMPT_RES = (
    re.compile(r"request \((\d+) tokens\)"),  # llama.cpp
    re.compile(r"\((\d+) in the messages"),  # vLLM (older)
    re.compile(r"request has (\d+) input tokens"),  # vLLM (newer)
    re.compile(r"(\d+) tokens from the input messages"),  # SGLang
    re.compile(r"the input \((\d+) tokens\)", re.IGNORECASE),  # SGLang (older)
    re.compile(r"keep the first (\d+) tokens"),  # LM Studio
)


def overflow_prompt_tokens(body: Any, message: str) -> int | None:
    """The prompt size (tokens) a host states in its overflow error, when it states one."""
    for err in (body, body.get("error") if isinstance(body, dict) else None):
        if isinstance(err, dict) and _int(err.get("n_prompt_tokens")):
            return _int(err["n_prompt_tokens"])
    for pattern in _PROMPT_RES:
        m = pattern.search(message or "")
        if m:
            return int(m.group(1))
    return None


@dataclass(frozen=True)
class Window:
    """A context window and where it was read."""

    tokens: int
    source: str


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and value > 0:
        return int(value)
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return None


def window_from_entry(entry: dict[str, Any]) -> Window | None:
    """The context window one `/v1/models` `data[]` entry declares, with its source."""
    meta = entry.get("meta")
    if isinstance(meta, dict) and _int(meta.get("n_ctx")):
        return Window(_int(meta["n_ctx"]) or 0, "GET /v1/models data[].meta.n_ctx (llama.cpp)")
    for key, who in (
        ("max_model_len", "vLLM/SGLang"),
        ("context_length", "OpenAI-compatible"),
        ("loaded_context_length", "LM Studio"),
        ("max_context_length", "LM Studio"),
        ("context_window", "OpenAI-compatible"),
    ):
        n = _int(entry.get(key))
        if n:
            return Window(n, f"GET /v1/models data[].{key} ({who})")
    top = entry.get("top_provider")  # OpenRouter
    if isinstance(top, dict) and _int(top.get("context_length")):
        return Window(_int(top["context_length"]) or 0, "GET /v1/models top_provider (OpenRouter)")
    return None


def window_from_ollama_show(payload: Any) -> Window | None:
    """The window in an Ollama `POST /api/show` answer (`num_ctx` wins over the trained size)."""
    if not isinstance(payload, dict):
        return None
    params = payload.get("parameters")
    if isinstance(params, str):
        for line in params.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "num_ctx" and _int(parts[1]):
                return Window(_int(parts[1]) or 0, "POST /api/show parameters num_ctx (Ollama)")
    info = payload.get("model_info")
    if isinstance(info, dict):
        for key, value in info.items():
            if key.endswith(".context_length") and _int(value):
                return Window(_int(value) or 0, f"POST /api/show model_info.{key} (Ollama)")
    return None


def window_from_lmstudio(payload: Any, model: str) -> Window | None:
    """The window of `model` in an LM Studio `GET /api/v0/models` answer."""
    data = payload.get("data") if isinstance(payload, dict) else None
    for entry in data or []:
        if isinstance(entry, dict) and entry.get("id") == model:
            for key in ("loaded_context_length", "max_context_length"):
                n = _int(entry.get(key))
                if n:
                    return Window(n, f"GET /api/v0/models data[].{key} (LM Studio)")
    return None


def server_root(base_url: str) -> str:
    """`http://h:1234/v1` -> `http://h:1234` (native APIs of Ollama and LM Studio live there)."""
    parts = urlsplit(base_url.rstrip("/"))
    path = parts.path[: -len("/v1")] if parts.path.endswith("/v1") else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def guess_host(provider: str, entries: list[dict[str, Any]]) -> str | None:
    """Which self-hosted server answered (from the preset, else the `/v1/models` shape)."""
    if provider in HOSTS:
        return provider
    for e in entries:
        owner = str(e.get("owned_by") or "")
        if owner == "llamacpp" or isinstance(e.get("meta"), dict):
            return "llamacpp"
        if owner == "vllm":
            return "vllm"
        if owner == "sglang":
            return "sglang"
        if owner == "library":
            return "ollama"
        if owner == "organization_owner":
            return "lmstudio"
    return None


async def native_window(host: str | None, base_url: str, model: str, fetch: Fetch) -> Window | None:
    """Ask Ollama's or LM Studio's native API for the window; None when it has no answer.

    `fetch(method, absolute_url, json_body)` returns the decoded JSON answer (the client passes
    the openai SDK's own HTTP plumbing, so the key and timeouts are the configured ones).
    """
    if host not in ("ollama", "lmstudio"):
        return None
    root = server_root(base_url)
    try:
        if host == "ollama":
            return window_from_ollama_show(
                await fetch("POST", f"{root}/api/show", {"model": model})
            )
        return window_from_lmstudio(await fetch("GET", f"{root}/api/v0/models", None), model)
    except Exception as exc:  # a missing native API only means "no window from there"
        log.debug("native context probe of %s failed: %s", host, type(exc).__name__)
        return None
