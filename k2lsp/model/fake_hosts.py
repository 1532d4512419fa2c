"""Host imitation for the fake K2 server: self-hosted servers' documented shapes.

`FakeK2Server(host="llamacpp" | "vllm" | "sglang" | "ollama" | "lmstudio")` answers like that
server where k2lsp must tell them apart (the default, `"moonshot"`, is Moonshot's API):

- `GET /v1/models`: llama.cpp puts the window in `data[].meta.n_ctx`, vLLM and SGLang in
  `data[].max_model_len`, Ollama and LM Studio give none there (Ollama: `POST /api/show`
  `model_info["<arch>.context_length"]`; LM Studio: `GET /api/v0/models` `max_context_length`).
- Context overflow (`context_limit` set): each server's own status and error body.
- llama.cpp renders the history through its chat template and answers HTTP 500 "Failed to
  parse tool call arguments as JSON" when an assistant tool call's arguments are not exactly
  one JSON object (checked on every request, as the real server does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from k2lsp.model.fake_validate import prompt_estimate

HOST_MODES = ("moonshot", "llamacpp", "vllm", "sglang", "ollama", "lmstudio")
_OWNER = {
    "llamacpp": "llamacpp",
    "vllm": "vllm",
    "sglang": "sglang",
    "ollama": "library",
    "lmstudio": "organization_owner",
}


@dataclass(frozen=True)
class HostError:
    """An error answer in a host's own shape."""

    status: int
    body: dict[str, Any]


def model_entry(host: str, model_id: str, window: int) -> dict[str, Any]:
    """One `GET /v1/models` `data[]` entry as `host` writes it."""
    entry: dict[str, Any] = {
        "id": model_id,
        "object": "model",
        "created": 1762387200,
        "owned_by": _OWNER[host],
    }
    if host == "llamacpp":
        entry["meta"] = {"vocab_type": 2, "n_vocab": 163840, "n_ctx": window, "n_ctx_train": 262144}
    elif host in ("vllm", "sglang"):
        entry["root"] = model_id
        entry["max_model_len"] = window
    return entry


def native_get(host: str, path: str, models: list[str], window: int) -> dict[str, Any] | None:
    """LM Studio's `GET /api/v0/models` (None for any other host or path)."""
    if host == "lmstudio" and path.rstrip("/") == "/api/v0/models":
        data = [
            {
                "id": m,
                "object": "model",
                "type": "llm",
                "state": "loaded",
                "max_context_length": window,
            }
            for m in models
        ]
        return {"object": "list", "data": data}
    return None


def native_post(host: str, path: str, body: Any, window: int) -> dict[str, Any] | None:
    """Ollama's `POST /api/show` (None for any other host or path)."""
    if host == "ollama" and path.rstrip("/") == "/api/show":
        return {
            "modelfile": "# fake",
            "parameters": "",
            "details": {"family": "deepseek2", "format": "gguf"},
            "model_info": {
                "general.architecture": "deepseek2",
                "deepseek2.context_length": window,
            },
            "capabilities": ["completion", "tools", "thinking"],
            "model": body.get("model") if isinstance(body, dict) else None,
        }
    return None


def _bad_arguments(body: dict[str, Any]) -> str | None:
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict) or msg.get("role") != "assistant":
            continue
        for call in msg.get("tool_calls") or []:
            args = (call.get("function") or {}).get("arguments")
            if not isinstance(args, str):
                continue
            try:
                obj = json.loads(args)
            except ValueError as exc:
                return f"parse error: {exc}"
            if not isinstance(obj, dict):
                return "type must be object"
    return None


def overflow_error(host: str, prompt: int, completion: int, window: int) -> HostError:
    """The context-overflow answer of `host` (llamacpp, lmstudio, vllm or sglang)."""
    if host == "llamacpp":
        message = (
            f"request ({prompt} tokens) exceeds the available context size ({window} tokens), "
            "try increasing it"
        )
        return HostError(
            400,
            {
                "error": {
                    "code": 400,
                    "message": message,
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": prompt,
                    "n_ctx": window,
                }
            },
        )
    if host == "lmstudio":
        return HostError(
            400,
            {
                "error": f"Trying to keep the first {prompt} tokens when context the overflows. "
                f"However, the model is loaded with context length of only {window} tokens, "
                "which is not enough. Try to load the model with a larger context length, or "
                "provide a shorter input"
            },
        )
    if host == "vllm":
        message = (
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the "
            "completion). Please reduce the length of the messages or completion."
        )
    else:  # sglang
        message = (
            "Requested token count exceeds the model's maximum context length of "
            f"{window} tokens. You requested a total of {prompt + completion} tokens: {prompt} "
            f"tokens from the input messages and {completion} tokens for the completion. Please "
            "reduce the number of tokens in the input messages or the completion to fit within "
            "the limit."
        )
    body = {"object": "error", "message": message, "type": "BadRequestError", "param": None}
    return HostError(400, {**body, "code": 400})


def check_host_request(host: str, body: dict[str, Any], window: int | None) -> HostError | None:
    """The error `host` answers to `body`, or None when it would serve it."""
    if host == "llamacpp":
        bad = _bad_arguments(body)
        if bad is not None:
            message = f"Failed to parse tool call arguments as JSON: [json.exception.{bad}]"
            return HostError(
                500, {"error": {"code": 500, "message": message, "type": "server_error"}}
            )
    if window is None or host in ("moonshot", "ollama"):  # Ollama truncates silently
        return None
    prompt = prompt_estimate(body)
    completion = int(body.get("max_tokens") or 0)
    over = prompt >= window if host in ("llamacpp", "lmstudio") else prompt + completion > window
    return overflow_error(host, prompt, completion, window) if over else None
