"""Sandbox limits from a run's settings: the profile file named by `sandbox_profile`, then the
single limits of `sandbox_limits`, both validated by the settings model's validator
(`k2lsp.config.model.SandboxLimits` through `validate_layer`), so a bad limit reads the same
wherever it is written:

    sandbox profile /p/tight.toml: memory_mb: must be >= 16 (got -5)
    /repo/k2lsp.toml: sandbox_limits.memory_mb: must be >= 16 (got -5)

The backend and the image are settings (`sandbox`, `sandbox_image`), not profile keys.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from k2lsp.errors import UsageError
from k2lsp.sandbox.base import SandboxSettings

_SETTING = {"kind": "sandbox", "image": "sandbox_image"}  # profile keys of older versions


def check_limits(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The typed limits of `table`; one UsageError naming every bad or unknown key."""
    from k2lsp.config.model import SandboxLimits, raise_problems_text, suggest, validate_layer

    values, problems, unknown = validate_layer(table, where, SandboxLimits)
    known = list(SandboxLimits.model_fields)
    lines = [str(p) for p in problems]
    lines += [
        f"{where}: {key}: unknown key{suggest(key, known)}; known: {', '.join(known)}"
        for key in unknown
    ]
    raise_problems_text(lines)
    return {k: v for k, v in values.items() if v is not None}


def read_profile(path: Path) -> dict[str, Any]:
    """The limits of a profile file (its `[sandbox]` table, or the top level)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read sandbox profile {path}: {exc}") from None
    table = data.get("sandbox", data)
    if not isinstance(table, dict):
        raise UsageError(f"sandbox profile {path}: [sandbox] must be a table of limits")
    moved = [f"{k}: not a limit; set `{_SETTING[k]}` in k2lsp.toml" for k in table if k in _SETTING]
    if moved:
        raise UsageError(f"sandbox profile {path}: " + "; ".join(moved))
    return check_limits(table, f"sandbox profile {path}")


def settings_for(settings: Any) -> SandboxSettings:
    """SandboxSettings from k2lsp's Settings: `sandbox`, `sandbox_image`, then a profile file
    (`sandbox_profile`) and a table of single limits (`sandbox_limits`) over it."""
    kind = getattr(settings, "sandbox", None) or "auto"
    image = getattr(settings, "sandbox_image", None) or SandboxSettings.image
    profile = getattr(settings, "sandbox_profile", None)
    limits = read_profile(Path(profile)) if profile else {}
    single = getattr(settings, "sandbox_limits", None) or {}
    limits.update(check_limits(single, "setting sandbox_limits"))
    return SandboxSettings(kind=kind, image=image, **limits)
