"""Settings from the user config file, the workspace (`[tool.k2lsp]` in `pyproject.toml`,
`k2lsp.toml`), the environment, editor options and CLI flags.

Precedence, later wins:

1. built-in defaults and the provider preset (see `k2lsp.providers`);
2. the user file `$XDG_CONFIG_HOME/k2lsp/config.toml` (default `~/.config/k2lsp/config.toml`);
3. `[tool.k2lsp]` in `<repo>/pyproject.toml`;
4. `<repo>/k2lsp.toml`;
5. env `K2LSP_<KEY>` for every key (`K2LSP_MODEL`, `K2LSP_MAX_STEPS`, …), read as TOML values;
6. `overrides` (editor initialization options, CLI flags) — explicit choices beat everything
   (`None` and empty strings count as unset).

The key is taken from (first found): an override, `K2LSP_API_KEY`, `api_key` in a file, then
the provider's own env var (`MOONSHOT_API_KEY`, `OPENROUTER_API_KEY`, …). Files use the
`Settings` field names. Every layer is validated by the one model (`k2lsp.settings_model`):
a bad value is a usage error naming where it came from, the key and the problem; an unknown
key is a warning (with a suggestion for a near miss).

Layers 3 and 4 come from the repository, which may be hostile: the keys of
`k2lsp.trust.SENSITIVE_KEYS` (where the key goes, what runs outside the sandbox) apply from
them only when the repository is trusted (`k2lsp trust`); otherwise they are ignored, named in
`Settings.untrusted` and in one notice line.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from k2lsp import trust as trust_mod
from k2lsp.errors import UsageError
from k2lsp.providers import PROVIDERS, default_prices
from k2lsp.redact import register_secret
from k2lsp.settings_model import (
    OTHER_ENV,
    SETTABLE,
    Problem,
    Settings,
    env_name,
    parse_text,
    raise_problems,
    suggest,
    unknown_line,
    validate_layer,
)

__all__ = ["Settings", "default_state_dir", "load_settings", "user_config_path"]

log = logging.getLogger(__name__)

ENV_KEYS = {env_name(key): key for key in SETTABLE}


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


class Layer:
    """One configuration layer: its values, where each key came from, from the repository?"""

    def __init__(self, name: str, values: dict[str, Any], from_repo: bool = False) -> None:
        self.name, self.values, self.from_repo = name, values, from_repo
        self.labels: Mapping[str, str] = {}

    def where(self, key: str) -> str:
        return self.labels.get(key, self.name)


def env_layer(environ: Mapping[str, str] | None = None) -> tuple[Layer, list[str]]:
    """`K2LSP_<KEY>` variables (empty = unset), and warnings for near-miss names."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    warnings = []
    for var, text in environ.items():
        if not var.startswith("K2LSP_") or not text:
            continue
        key = ENV_KEYS.get(var)
        if key is not None:
            values[key] = parse_text(key, text)
            labels[key] = var
        elif var not in OTHER_ENV and (hint := suggest(var, ENV_KEYS)):
            warnings.append(f"environment: unknown variable {var!r} ignored{hint}")
    layer = Layer("environment", values)
    layer.labels = labels
    return layer, warnings


def _layers(
    repo: Path | None, overrides: dict[str, Any], labels: Mapping[str, str]
) -> tuple[list[Layer], list[str]]:
    user = user_config_path()
    layers = [Layer(str(user), _read_toml(user))]
    if repo is not None:
        pyproject = Path(repo) / "pyproject.toml"
        layers.append(Layer(f"{pyproject} [tool.k2lsp]", _read_toml(pyproject, "tool.k2lsp"), True))
        local = Path(repo) / "k2lsp.toml"
        layers.append(Layer(str(local), _read_toml(local), True))
    env, warnings = env_layer()
    layers.append(env)
    explicit = Layer(
        "editor/CLI options", {k: v for k, v in overrides.items() if v is not None and v != ""}
    )
    explicit.labels = labels
    layers.append(explicit)
    return layers, warnings


def load_settings(
    repo: Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    require_key: bool = False,
    trusted: bool | None = None,
    notify: Callable[[str], None] | None = None,
    labels: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Settings:
    """Merge every configuration layer for `repo`; `overrides` are editor options / CLI flags
    (`labels` names where each came from, e.g. `--max-steps`; default "editor/CLI options").

    Every layer goes through `k2lsp.settings_model.validate_layer`: bad values of all layers
    are reported together in one UsageError (one line each, naming where, the key and the
    problem); unknown keys are warned about through `warn` (default: a warning log line).

    `trusted`: None asks `k2lsp.trust` (the user's trust store, `K2LSP_TRUST_REPO`); True or
    False is the front-end's answer (the editor's workspace trust). Sensitive keys of an
    untrusted repository are dropped and reported once through `notify` (default: a warning
    log line); `Settings.untrusted` names them. Their values are still validated.
    """
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    ignored: list[str] = []
    problems: list[Problem] = []
    layers, warnings = _layers(repo, dict(overrides or {}), labels or {})
    for layer in layers:
        checked, bad, unknown = validate_layer(layer.values, layer.where)
        problems += bad
        warnings += [unknown_line(layer.where(key), key, SETTABLE) for key in unknown]
        if layer.from_repo and any(k in trust_mod.SENSITIVE_KEYS for k in layer.values):
            if trusted is None:
                assert repo is not None
                trusted = trust_mod.is_trusted(repo)
            if not trusted:
                ignored += [k for k in layer.values if k in trust_mod.SENSITIVE_KEYS]
                checked = {k: v for k, v in checked.items() if k not in trust_mod.SENSITIVE_KEYS}
        for key, value in checked.items():
            merged[key] = value
            origin[key] = layer.where(key)
    for line in warnings:
        (warn or log.warning)(line)
    raise_problems(problems)
    settings = Settings.model_validate({k: v for k, v in merged.items() if k != "prices"})
    if ignored:
        assert repo is not None
        settings.untrusted = sorted(set(ignored))
        (notify or log.warning)(trust_mod.notice(repo, settings.untrusted))
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
        settings.api_key_env = "K2LSP_API_KEY" if src == "K2LSP_API_KEY" else preset.key_env
        settings.api_key_source = src
    elif preset.key_env and os.environ.get(preset.key_env):
        settings.api_key = os.environ[preset.key_env]
        settings.api_key_env = settings.api_key_source = preset.key_env
    register_secret(settings.api_key)
    settings.prices = {**default_prices(settings.provider, settings.model), **prices}
    if settings.state_dir is None:
        settings.state_dir = default_state_dir()
    # An unset temperature stays None: the client picks it from the model profile, which
    # GET /models may still turn into a thinking one (temperature 1.0) for a custom name.
