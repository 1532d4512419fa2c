"""The configuration reference (docs/configuration.md) generated from `Settings`:
`python -m k2lsp.config.doc` prints the table; tests/test_settings_layers.py keeps the docs
and the model equal."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal

from k2lsp.config.model import SETTABLE, SandboxLimits, Settings, env_name, fmt_number
from k2lsp.config.tables import McpServer


def _type_text(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _type_text(args[0])
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__} of " + " to ".join(_type_text(a) for a in args)
    if annotation is type(None):
        return "unset"
    return "any" if annotation is Any else getattr(annotation, "__name__", str(annotation))


def _bounds(annotation: Any, metadata: list[Any]) -> str:
    found = list(metadata)
    for arg in typing.get_args(annotation):  # Count | None: the bounds sit inside
        if typing.get_origin(arg) is Annotated:
            for meta in arg.__metadata__:
                found += [meta, *getattr(meta, "metadata", [])]
    return "".join(
        f", {sym} {fmt_number(getattr(m, attr))}"
        for m in found
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
        if getattr(m, attr, None) is not None
    )


def reference_rows() -> list[tuple[str, str, str, str, str]]:
    """(key, type, default, env var, description) of each settable field, for the docs."""
    rows = []
    for name in SETTABLE:
        info = Settings.model_fields[name]
        default = info.get_default(call_default_factory=True)
        bounds = _bounds(info.annotation, info.metadata)
        kind = {
            "provider": "str (a preset)",
            "base_url": "str (URL)",
            "sandbox_limits": "table of " + ", ".join(SandboxLimits.model_fields),
            "mcp": "table: servers.NAME (" + ", ".join(McpServer.model_fields) + "), "
            "output_cap_chars",
        }.get(name, _type_text(info.annotation))
        shown = "{}" if name == "mcp" else repr(default)
        rows.append((name, kind + bounds, shown, env_name(name), info.description or ""))
    return rows


def reference_table() -> str:
    """The Markdown table of docs/configuration.md."""
    lines = ["| key | type | default | env | meaning |", "|---|---|---|---|---|"]
    for key, kind, default, env, doc in reference_rows():
        cells = [f"`{key}`", kind, f"`{default}`", f"`{env}`", doc]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_table(), end="")
