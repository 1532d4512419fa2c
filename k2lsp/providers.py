"""Host presets and model profiles: where each K2 host lives, which env var holds its key, which
reasoning field it speaks, how thinking is switched, context length and list prices.

Prices are USD per 1M tokens (`input_cache_hit`, `input`, `output`), from the hosts' public
price pages in Nov 2025 (see docs `k2-protocol.md`); where a host published no figure we use
Moonshot's list price. Users override them with `prices` in any config file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

K2_THINKING_CONTEXT = 262_144


@dataclass(frozen=True)
class Provider:
    """One host preset."""

    name: str
    base_url: str  # "" = the user must give one
    key_env: str  # the host's own env var for the key ("" = none)
    key_required: bool = True
    default_model: str = "kimi-k2-thinking"
    # Field to send reasoning back in; None = the field it arrived in.
    reasoning_send: str | None = "reasoning_content"
    echo_reasoning_details: bool = False  # OpenRouter: send `reasoning_details` back verbatim
    prices: dict[str, float] = field(default_factory=dict)


MOONSHOT_PRICES = {"input_cache_hit": 0.15, "input": 0.60, "output": 2.50}
MOONSHOT_TURBO_PRICES = {"input_cache_hit": 0.15, "input": 1.15, "output": 8.00}
FREE = {"input_cache_hit": 0.0, "input": 0.0, "output": 0.0}

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in [
        # Moonshot retired `kimi-k2-thinking` on its own platform in 2026 (k2-protocol.md);
        # kimi-k2.5 thinks when `extra_body` switches it on (see model_profile).
        Provider(
            "moonshot",
            "https://api.moonshot.ai/v1",
            "MOONSHOT_API_KEY",
            default_model="kimi-k2.5",
            prices=MOONSHOT_PRICES,
        ),
        Provider(
            "moonshot-cn",
            "https://api.moonshot.cn/v1",
            "MOONSHOT_API_KEY",
            default_model="kimi-k2.5",
            prices=MOONSHOT_PRICES,
        ),
        Provider(
            "openrouter",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            default_model="moonshotai/kimi-k2-thinking",
            reasoning_send="reasoning",
            echo_reasoning_details=True,
            prices={"input_cache_hit": 0.60, "input": 0.60, "output": 2.50},
        ),
        Provider(
            "together",
            "https://api.together.xyz/v1",
            "TOGETHER_API_KEY",
            default_model="moonshotai/Kimi-K2-Thinking",
            reasoning_send="reasoning",
            prices={"input_cache_hit": 1.20, "input": 1.20, "output": 4.00},
        ),
        Provider(
            "fireworks",
            "https://api.fireworks.ai/inference/v1",
            "FIREWORKS_API_KEY",
            default_model="accounts/fireworks/models/kimi-k2-thinking",
            prices=MOONSHOT_PRICES,
        ),
        Provider(
            "chutes",
            "https://llm.chutes.ai/v1",
            "CHUTES_API_KEY",
            default_model="moonshotai/Kimi-K2-Thinking",
            reasoning_send=None,
            prices=MOONSHOT_PRICES,
        ),
        # Self-hosted servers (docs/self-hosting.md): no key, free; the local ones default to
        # their usual port on this machine, vLLM and SGLang usually run elsewhere.
        Provider("vllm", "", "", key_required=False, reasoning_send=None, prices=FREE),
        Provider("sglang", "", "", key_required=False, prices=FREE),
        Provider(
            "llamacpp",
            "http://127.0.0.1:8080/v1",
            "",
            key_required=False,
            reasoning_send="reasoning_content",
            prices=FREE,
        ),
        Provider(
            "ollama",
            "http://127.0.0.1:11434/v1",
            "",
            key_required=False,
            reasoning_send=None,
            prices=FREE,
        ),
        Provider(
            "lmstudio",
            "http://127.0.0.1:1234/v1",
            "",
            key_required=False,
            reasoning_send=None,
            prices=FREE,
        ),
        Provider("openai-compatible", "", "", key_required=False, reasoning_send=None, prices=FREE),
    ]
}


@dataclass(frozen=True)
class ModelProfile:
    """What we know about a model id: thinking switch, default temperature, context window."""

    thinking_switch: str  # "always" (no off switch) | "extra_body" (thinking object) | "none"
    temperature: float
    context_length: int
    turbo: bool = False

    @property
    def thinks(self) -> bool:
        """Whether the model can think at all."""
        return self.thinking_switch != "none"


def model_profile(model: str) -> ModelProfile:
    """The profile of a model id (matched loosely, case-insensitive, any host prefix)."""
    m = model.lower().rsplit("/", 1)[-1]
    if "k2-thinking" in m:
        return ModelProfile("always", 1.0, K2_THINKING_CONTEXT, turbo="turbo" in m)
    if any(tag in m for tag in ("k2.5", "k2.6", "k2.7", "k2-5", "k2-6", "k2-7", "kimi-k3", "-k3")):
        return ModelProfile("extra_body", 1.0, K2_THINKING_CONTEXT)
    if "k2" in m:  # kimi-k2-instruct and friends: no thinking
        return ModelProfile("none", 0.6, 131_072)
    return ModelProfile("none", 1.0, K2_THINKING_CONTEXT)


def default_prices(provider: str, model: str) -> dict[str, float]:
    """List prices for `model` on `provider` (per 1M tokens)."""
    preset = PROVIDERS.get(provider)
    prices = dict(preset.prices) if preset else dict(MOONSHOT_PRICES)
    if provider in ("moonshot", "moonshot-cn") and model_profile(model).turbo:
        prices = dict(MOONSHOT_TURBO_PRICES)
    return prices


def provider_names() -> str:
    """The known provider names, comma-separated (for error messages)."""
    return ", ".join(PROVIDERS)
