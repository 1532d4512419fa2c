"""Settings from env, `k2lsp.toml` / `[tool.k2lsp]`, the user config file, editor options and
CLI flags (later wins: defaults < user file < pyproject < k2lsp.toml < env < editor/CLI).

STUB: the agent-core issue fills in `load_settings`; field names below are the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Settings:
    """Everything a run needs to know. `api_key` never appears in repr, logs or events."""

    provider: str = "moonshot"
    base_url: str = ""
    model: str = ""
    api_key: str = field(default="", repr=False)
    api_key_env: str = ""  # the env var the key came from (for error messages)
    # request
    temperature: float | None = None  # None = model profile default (1.0 for thinking)
    max_output_tokens: int = 32_000  # per request; clamped to the context window
    thinking: bool | None = None  # None = model profile default
    context_length: int | None = None  # None = from GET /models or the profile
    prices: dict[str, float] = field(default_factory=dict)  # input_cache_hit, input, output per 1M
    max_retries: int = 3
    request_timeout_s: float = 600.0
    # budgets
    max_steps: int = 300
    max_tokens: int | None = None  # total tokens over the run
    budget_usd: float | None = None
    timeout_s: float | None = None  # wall time of a run
    # tools and sandbox
    sandbox: str = "auto"  # auto | docker | bwrap | none
    sandbox_image: str = "k2lsp-sandbox:latest"
    test_command: str | None = None
    command_timeout_s: float = 600.0
    allow_commands: list[str] = field(default_factory=list)
    allow_test_changes: bool = False
    secret_globs: list[str] = field(default_factory=list)
    # where things go
    state_dir: Path | None = None  # trajectories, transcripts, checkpoints
    extra: dict[str, Any] = field(default_factory=dict)


def load_settings(repo: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Merge every configuration layer for `repo`; `overrides` are editor options / CLI flags."""
    settings = Settings()
    for key, value in (overrides or {}).items():
        if value is not None and hasattr(settings, key):
            setattr(settings, key, value)
    return settings
