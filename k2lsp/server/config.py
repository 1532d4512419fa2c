"""Editor configuration (initializationOptions, workspace/configuration) -> validated options.

Keys are `k2lsp.config.settings.Settings` field names in snake_case or camelCase plus the
server-only
keys of `ServerOptions` (`protocol.SERVER_OPTION_KEYS`). Both are pydantic models validated by
`k2lsp.config.model.validate_layer`, the validator of every other layer, so a bad value reads
the same as in a file (`editor setting 'maxSteps': max_steps: must be >= 1 (got -3)`). Every
bad value and unknown key produces one problem line (the caller shows it with
window/showMessage) and is dropped, so the value of the lower layers applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from k2lsp.config.model import SETTABLE, Settings, snake, suggest, validate_layer


class ServerOptions(BaseModel):
    """Options of the language server itself (not of a run)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    stream_notifications: bool = False
    preview: bool = False
    # with preview: the client shows the proposal per hunk (k2lsp/review) and decides each
    review_hunks: bool = False
    transcript: bool = True
    log_reasoning: bool = True
    approvals: Literal["ask", "policy"] = "ask"
    heavy_candidates: int = Field(default=0, ge=0, le=16)  # 2+: "(K2 heavy ×N)" code actions
    # The editor's own workspace trust (VS Code: workspace.isTrusted). None: k2lsp's trust
    # store decides (`k2lsp trust`); see k2lsp.config.trust.
    workspace_trusted: bool | None = None


@dataclass
class EditorConfig:
    """What the editor configured: server options, Settings overrides, and problems found."""

    options: ServerOptions = field(default_factory=ServerOptions)
    overrides: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # Bad values of BLOCKING keys (key -> problem): runs refuse to start until they are fixed,
    # rather than sending the key to the host another layer names.
    blocking: dict[str, str] = field(default_factory=dict)


BLOCKING = frozenset({"provider", "base_url", "api_key"})


def parse_config(raw: Any, base: EditorConfig | None = None) -> EditorConfig:
    """Validate one configuration object (`{"k2lsp": {...}}` or the inner object) over `base`."""
    out = EditorConfig(
        options=base.options.model_copy() if base else ServerOptions(),
        overrides=dict(base.overrides) if base else {},
        blocking=dict(base.blocking) if base else {},
    )
    if raw is None:
        return out
    if isinstance(raw, dict) and isinstance(raw.get("k2lsp"), dict):
        raw = raw["k2lsp"]
    if not isinstance(raw, dict):
        out.problems.append(
            f"k2lsp configuration must be an object, got {type(raw).__name__}; using defaults"
        )
        return out
    given: dict[str, str] = {}  # snake_case name -> the key as the editor spelt it
    for key in raw:
        given.setdefault(snake(str(key)), str(key))
    values = {snake(str(k)): v for k, v in raw.items()}
    option_values = {k: v for k, v in values.items() if k in ServerOptions.model_fields}
    settings_values = {k: v for k, v in values.items() if k not in option_values}
    for name in [k for k, v in settings_values.items() if v is None or v == ""]:
        out.overrides.pop(name, None)  # null or "" (an empty editor field): the lower layers
        out.blocking.pop(name, None)
        del settings_values[name]

    def where(name: str) -> str:
        return f"k2lsp: editor setting {given.get(name, name)!r}"

    options, bad_options, _ = validate_layer(option_values, where, ServerOptions)
    overrides, bad_settings, unknown = validate_layer(settings_values, where, Settings)
    out.options = out.options.model_copy(update=options)
    out.overrides.update(overrides)
    for name in overrides:
        out.blocking.pop(name, None)
    out.blocking.update({p.field: str(p) for p in bad_settings if p.field in BLOCKING})
    out.problems += [f"{p}; ignored, {_fallback(p.field, out)}" for p in bad_options]
    out.problems += [f"{p}; ignored, {_fallback(p.field, out)}" for p in bad_settings]
    known = [*SETTABLE, *ServerOptions.model_fields]
    out.problems += [
        f"k2lsp: editor: unknown setting {given.get(k, k)!r} ignored{suggest(k, known)}"
        for k in unknown
    ]
    return out


def _fallback(name: str, config: EditorConfig) -> str:
    """What applies instead: an earlier editor value, or the other layers' (or the default)."""
    if name in ServerOptions.model_fields:
        return f"using {getattr(config.options, name)!r}"
    if name == "api_key":
        return "using the key of the other layers"
    if name in config.overrides:
        return f"using {config.overrides[name]!r}"
    info = Settings.model_fields.get(name)
    default = info.get_default(call_default_factory=True) if info else None
    return f"the files' or environment's value applies (default {default!r})"


def state_dir(settings: Settings) -> Path:
    """Where transcripts, previews and saved patches go (the shared state-dir rule)."""
    from k2lsp.config.settings import default_state_dir

    return default_state_dir(settings.state_dir)
