"""Settings from the user config file, the workspace (`[tool.k2lsp]` in `pyproject.toml`,
`k2lsp.toml`), the environment, editor options and CLI flags.

Precedence, later wins:

1. built-in defaults and the provider preset (see `k2lsp.providers`);
2. the user file `$XDG_CONFIG_HOME/k2lsp/config.toml` (default `~/.config/k2lsp/config.toml`);
3. `[tool.k2lsp]` in `<repo>/pyproject.toml`;
4. `<repo>/k2lsp.toml`;
5. env `K2LSP_PROVIDER`, `K2LSP_BASE_URL`, `K2LSP_MODEL`, `K2LSP_API_KEY`, `K2LSP_SANDBOX`;
6. `overrides` (editor initialization options, CLI flags) — explicit choices beat everything
   (`None` and empty strings count as unset).

The key is taken from (first found): an override, `K2LSP_API_KEY`, `api_key` in a file, then
the provider's own env var (`MOONSHOT_API_KEY`, `OPENROUTER_API_KEY`, …). Files use the
`Settings` field names; unknown keys and wrong types are usage errors naming the key and file.

Layers 3 and 4 come from the repository, which may be hostile: the keys of
`k2lsp.trust.SENSITIVE_KEYS` (where the key goes, what runs outside the sandbox) apply from
them only when the repository is trusted (`k2lsp trust`); otherwise they are ignored, named in
`Settings.untrusted` and in one notice line.
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from k2lsp import trust as trust_mod
from k2lsp.errors import UsageError
from k2lsp.providers import PROVIDERS, default_prices, provider_names
from k2lsp.redact import register_secret

log = logging.getLogger(__name__)

ENV_KEYS = {
    "K2LSP_PROVIDER": "provider",
    "K2LSP_BASE_URL": "base_url",
    "K2LSP_MODEL": "model",
    "K2LSP_API_KEY": "api_key",
    "K2LSP_SANDBOX": "sandbox",
}
PRICE_KEYS = ("input_cache_hit", "input", "output")


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
    sandbox_profile: Path | None = None  # a limits profile (see sandbox/profiles/default.toml)
    sandbox_limits: dict[str, Any] = field(default_factory=dict)  # single limits, e.g. pids
    test_command: str | None = None
    command_timeout_s: float = 600.0
    allow_commands: list[str] = field(default_factory=list)
    allow_test_changes: bool = False
    secret_globs: list[str] = field(default_factory=list)
    allow_secrets: bool = False  # read files on the secret denylist (k2lsp.workspace)
    # where things go
    state_dir: Path | None = None  # trajectories, transcripts, checkpoints
    extra: dict[str, Any] = field(default_factory=dict)
    # retries (additions): base of the exponential backoff and its ceiling, in seconds
    retry_base_delay_s: float = 1.0
    retry_max_delay_s: float = 60.0
    # a host-forced delay (Retry-After, "try again after N s") above this ends the attempt
    max_retry_after_s: float = 120.0
    api_key_source: str = ""  # where the key came from: an env var name or a file path
    # repository keys ignored because the repository is not trusted (k2lsp.trust)
    untrusted: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "api_key"
        )
        return f"Settings({shown}, api_key={'<set>' if self.api_key else '<unset>'})"

    def key_hint(self) -> str:
        """Which env var the user should set (or fix) for the key of this provider."""
        preset = PROVIDERS.get(self.provider)
        names = [n for n in (self.api_key_env, preset.key_env if preset else "") if n]
        names.append("K2LSP_API_KEY")
        return " or ".join(dict.fromkeys(names))

    def check_ready(self) -> None:
        """Raise UsageError unless a model can be called (provider, base URL, model id, key)."""
        if self.provider not in PROVIDERS:
            raise UsageError(
                f"unknown provider {self.provider!r}; choose one of: {provider_names()}"
            )
        if not self.base_url:
            raise UsageError(
                f"provider {self.provider!r} has no base URL: set K2LSP_BASE_URL or `base_url` "
                "in k2lsp.toml"
            )
        if not self.model:
            raise UsageError("no model id: set K2LSP_MODEL or `model` in k2lsp.toml")
        preset = PROVIDERS[self.provider]
        if preset.key_required and not self.api_key:
            raise UsageError(
                f"no API key for provider {self.provider!r}: set {self.key_hint()} in the "
                "environment"
            )


_FIELDS = {f.name: f for f in fields(Settings)}
_FILE_KEYS = set(_FIELDS) - {"api_key_env", "api_key_source", "untrusted"}


def user_config_path() -> Path:
    """`$XDG_CONFIG_HOME/k2lsp/config.toml` (default `~/.config/k2lsp/config.toml`)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "k2lsp" / "config.toml"


def default_state_dir(state_dir: Path | str | None = None) -> Path:
    """`state_dir` if given, else `$K2LSP_STATE_DIR`, else `$XDG_STATE_HOME/k2lsp`
    (default `~/.local/state/k2lsp`): runs, trajectories, transcripts, checkpoints."""
    if state_dir:
        return Path(state_dir).expanduser().resolve()
    env = os.environ.get("K2LSP_STATE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser().resolve() / "k2lsp"


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _coerce(key: str, value: Any, source: str) -> Any:
    """Check `value` against the declared type of Settings.`key`; raise UsageError if wrong."""
    kind = str(_FIELDS[key].type).replace(" ", "")
    optional = kind.endswith("|None")
    base = kind.removesuffix("|None")
    if value is None and optional:
        return None
    ok: bool
    if base == "str":
        ok = isinstance(value, str)
    elif base == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base == "float":
        ok = _is_num(value)
        value = float(value) if ok else value
    elif base == "bool":
        ok = isinstance(value, bool)
    elif base == "list[str]":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif base == "dict[str,float]":
        ok = isinstance(value, dict) and all(_is_num(v) for v in value.values())
        unknown = set(value) - set(PRICE_KEYS) if ok else set()
        if unknown:
            raise UsageError(
                f"{source}: unknown price key(s) {sorted(unknown)} in {key!r}; "
                f"use {', '.join(PRICE_KEYS)} (USD per 1M tokens)"
            )
    elif base == "Path":
        ok = isinstance(value, str | Path)
        value = Path(value).expanduser() if ok else value
    else:
        ok = isinstance(value, dict)
    if not ok:
        raise UsageError(
            f"{source}: {key!r} must be {kind.replace('|', ' or ')}, got {type(value).__name__} "
            f"{value!r}"
        )
    return value


def _check_layer(layer: dict[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in layer.items():
        if key not in _FILE_KEYS:
            near = difflib.get_close_matches(key, sorted(_FILE_KEYS), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise UsageError(f"{source}: unknown setting {key!r}{hint}")
        out[key] = _coerce(key, value, source)
    return out


def _read_toml(path: Path, table: str | None = None) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from exc
    if table:
        for part in table.split("."):
            data = data.get(part, {})
            if not isinstance(data, dict):
                raise UsageError(f"{path}: [{table}] must be a table")
    return data


Layer = tuple[str, dict[str, Any], bool]  # (source, values, from the repository)


def _layers(repo: Path | None, overrides: dict[str, Any]) -> list[Layer]:
    user = user_config_path()
    layers: list[Layer] = [(str(user), _read_toml(user), False)]
    if repo is not None:
        pyproject = Path(repo) / "pyproject.toml"
        layers.append((f"{pyproject} [tool.k2lsp]", _read_toml(pyproject, "tool.k2lsp"), True))
        local = Path(repo) / "k2lsp.toml"
        layers.append((str(local), _read_toml(local), True))
    env = {ENV_KEYS[k]: v for k, v in os.environ.items() if k in ENV_KEYS and v}
    layers.append(("environment", env, False))
    explicit = {k: v for k, v in overrides.items() if v is not None and v != "" and k in _FILE_KEYS}
    for key in sorted(set(overrides) - _FILE_KEYS):
        log.warning("ignoring unknown option %r", key)
    layers.append(("editor/CLI options", explicit, False))
    return layers


def load_settings(
    repo: Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    require_key: bool = False,
    trusted: bool | None = None,
    notify: Callable[[str], None] | None = None,
) -> Settings:
    """Merge every configuration layer for `repo`; `overrides` are editor options / CLI flags.

    `trusted`: None asks `k2lsp.trust` (the user's trust store, `K2LSP_TRUST_REPO`); True or
    False is the front-end's answer (the editor's workspace trust). Sensitive keys of an
    untrusted repository are dropped and reported once through `notify` (default: a warning
    log line); `Settings.untrusted` names them.
    """
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    ignored: list[str] = []
    for source, layer, from_repo in _layers(repo, dict(overrides or {})):
        checked = _check_layer(layer, source)
        if from_repo and any(k in trust_mod.SENSITIVE_KEYS for k in checked):
            if trusted is None:
                assert repo is not None
                trusted = trust_mod.is_trusted(repo)
            if not trusted:
                ignored += [k for k in checked if k in trust_mod.SENSITIVE_KEYS]
                checked = {k: v for k, v in checked.items() if k not in trust_mod.SENSITIVE_KEYS}
        for key, value in checked.items():
            merged[key] = value
            origin[key] = source
    settings = Settings(**{k: v for k, v in merged.items() if k != "prices"})
    if ignored:
        assert repo is not None
        settings.untrusted = sorted(set(ignored))
        (notify or log.warning)(trust_mod.notice(repo, settings.untrusted))
    if settings.provider not in PROVIDERS:
        raise UsageError(
            f"{origin.get('provider', 'settings')}: unknown provider {settings.provider!r}; "
            f"choose one of: {provider_names()}"
        )
    _apply_preset(settings, merged.get("prices") or {}, origin)
    if require_key:
        settings.check_ready()
    return settings


def _apply_preset(settings: Settings, prices: dict[str, float], origin: dict[str, str]) -> None:
    preset = PROVIDERS[settings.provider]
    settings.base_url = (settings.base_url or preset.base_url).rstrip("/")
    settings.model = settings.model or preset.default_model
    if settings.api_key:
        src = origin.get("api_key", "")
        settings.api_key_env = "K2LSP_API_KEY" if src == "environment" else preset.key_env
        settings.api_key_source = "K2LSP_API_KEY" if src == "environment" else src
    elif preset.key_env and os.environ.get(preset.key_env):
        settings.api_key = os.environ[preset.key_env]
        settings.api_key_env = settings.api_key_source = preset.key_env
    register_secret(settings.api_key)
    settings.prices = {**default_prices(settings.provider, settings.model), **prices}
    if settings.state_dir is None:
        settings.state_dir = default_state_dir()
    # An unset temperature stays None: the client picks it from the model profile, which
    # GET /models may still turn into a thinking one (temperature 1.0) for a custom name.
    if settings.max_output_tokens < 1:
        raise UsageError(f"{origin.get('max_output_tokens')}: 'max_output_tokens' must be ≥ 1")
