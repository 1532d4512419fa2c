"""Editor configuration (initializationOptions, workspace/configuration) -> validated options.

Keys are `k2lsp.config.Settings` field names in snake_case or camelCase plus the server-only
keys of `protocol.SERVER_OPTION_KEYS`. Every bad value produces a readable problem (the caller
shows it with window/showMessage) and is dropped, so the default applies.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from k2lsp.config import Settings

SANDBOX_KINDS = ("auto", "docker", "bwrap", "none")
APPROVAL_MODES = ("ask", "policy")
# Settings fields whose numbers must be positive.
_POSITIVE = {
    "max_output_tokens",
    "max_steps",
    "max_tokens",
    "budget_usd",
    "timeout_s",
    "request_timeout_s",
    "command_timeout_s",
    "context_length",
}
_SECRET_KEYS = {"api_key"}


@dataclass
class ServerOptions:
    """Options of the language server itself (not of a run)."""

    stream_notifications: bool = False
    preview: bool = False
    transcript: bool = True
    log_reasoning: bool = True
    approvals: str = "ask"
    # The editor's own workspace trust (VS Code: workspace.isTrusted). None: k2lsp's trust
    # store decides (`k2lsp trust`); see k2lsp.trust.
    workspace_trusted: bool | None = None


@dataclass
class EditorConfig:
    """What the editor configured: server options, Settings overrides, and problems found."""

    options: ServerOptions = field(default_factory=ServerOptions)
    overrides: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def snake(name: str) -> str:
    """camelCase -> snake_case (snake_case passes through)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def parse_config(raw: Any, base: EditorConfig | None = None) -> EditorConfig:
    """Validate one configuration object (`{"k2lsp": {...}}` or the inner object) over `base`."""
    out = EditorConfig(
        options=ServerOptions(**vars(base.options)) if base else ServerOptions(),
        overrides=dict(base.overrides) if base else {},
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
    option_names = {f.name for f in fields(ServerOptions)}
    hints = _settings_hints()
    for key, value in raw.items():
        name = snake(str(key))
        if name in option_names:
            problem = _set_option(out.options, name, key, value)
        elif name in hints:
            problem = _set_override(out.overrides, name, key, value, hints[name])
        else:
            problem = f"k2lsp: unknown setting {key!r} ignored"
        if problem:
            out.problems.append(problem)
    return out


def _set_option(options: ServerOptions, name: str, key: str, value: Any) -> str:
    if name == "approvals":
        if value not in APPROVAL_MODES:
            return _bad(key, value, f"one of {', '.join(APPROVAL_MODES)}", options.approvals)
    elif not isinstance(value, bool):
        return _bad(key, value, "true or false", getattr(options, name))
    setattr(options, name, value)
    return ""


def _set_override(out: dict[str, Any], name: str, key: str, value: Any, hint: Any) -> str:
    from k2lsp.config import Settings

    default = getattr(Settings(), name)
    if value is None:
        out.pop(name, None)
        return ""
    try:
        converted = _convert(name, value, hint)
    except (TypeError, ValueError) as exc:
        shown = "***" if name in _SECRET_KEYS else value
        return _bad(key, shown, str(exc), "***" if name in _SECRET_KEYS else default)
    out[name] = converted
    return ""


def _bad(key: str, value: Any, expected: str, default: Any) -> str:
    return f"k2lsp: setting {key!r} = {value!r} is invalid (expected {expected}); using {default!r}"


def _convert(name: str, value: Any, hint: Any) -> Any:
    """Check `value` against a Settings field type; raise ValueError naming what is expected."""
    base = _strip_optional(hint)
    if name == "sandbox":
        if value not in SANDBOX_KINDS:
            raise ValueError(f"one of {', '.join(SANDBOX_KINDS)}")
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise ValueError("true or false")
        return value
    if base in (int, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or (base is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError("a whole number" if base is int else "a number")
        if name in _POSITIVE and value <= 0:
            raise ValueError("a number greater than 0")
        if name == "temperature" and not 0 <= value <= 2:
            raise ValueError("a number between 0 and 2")
        return base(value)
    if base is str:
        if not isinstance(value, str):
            raise ValueError("a string")
        return value
    if base is Path:
        if not isinstance(value, str) or not value:
            raise ValueError("a folder path")
        return Path(value).expanduser()
    origin = typing.get_origin(base)
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("a list of strings")
        return list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError("an object")
        if name == "prices" and not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
            for v in value.values()
        ):
            raise ValueError("an object of non-negative numbers")
        return dict(value)
    return value


def _strip_optional(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, _union_type()) and len(args) == 1:
        return args[0]
    return hint


def _union_type() -> Any:
    import types

    return types.UnionType


_HINTS: dict[str, Any] | None = None


def _settings_hints() -> dict[str, Any]:
    global _HINTS
    if _HINTS is None:
        from k2lsp.config import Settings

        hints = typing.get_type_hints(Settings)
        _HINTS = {
            k: v
            for k, v in hints.items()
            if k not in ("extra", "api_key_env", "api_key_source", "untrusted")
        }
    return _HINTS


def state_dir(settings: Settings) -> Path:
    """Where transcripts, previews and saved patches go (the shared state-dir rule)."""
    from k2lsp.config import default_state_dir

    return default_state_dir(settings.state_dir)
