"""Tables of `Settings` with keys of their own: `sandbox_limits` and `[mcp.servers.NAME]`.

Each table is a strict pydantic model, so a bad key or value is reported by the one validator
of `k2lsp.config.model` with the table's path (`k2lsp.toml: mcp.servers.x.command: ...`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


class SandboxLimits(BaseModel):
    """Single limits of `sandbox_limits` (the keys of a sandbox profile, see
    sandbox/profiles/default.toml); the table stays a plain dict of the keys given."""

    model_config = ConfigDict(strict=True, extra="forbid")

    memory_mb: int | None = Field(default=None, ge=16)
    cpus: float | None = Field(default=None, gt=0)
    pids: int | None = Field(default=None, ge=1)
    network: bool | None = None
    output_cap_bytes: int | None = Field(default=None, ge=1)
    file_size_mb: int | None = Field(default=None, ge=1)
    tmp_mb: int | None = Field(default=None, ge=1)
    shm_mb: int | None = Field(default=None, ge=1)
    ro_paths: list[str] | None = None
    read_only_root: bool | None = None


def _limits_dict(limits: SandboxLimits) -> dict[str, Any]:
    return limits.model_dump(exclude_unset=True, exclude_none=True)


if TYPE_CHECKING:
    Limits = dict[str, Any]
else:
    Limits = Annotated[SandboxLimits, AfterValidator(_limits_dict)]


SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


class McpServer(BaseModel):
    """One MCP server: a stdio command (`command`, `args`, `env`, `cwd`) or a streamable HTTP
    endpoint (`url`, `headers`). Env values and headers are secrets: never shown in repr."""

    model_config = ConfigDict(strict=True, extra="forbid")

    command: str | None = Field(default=None, min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, repr=False)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    allow_tools: list[str] = Field(default_factory=list)  # tool globs that run without asking
    enabled: bool = True
    timeout_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either `command` (stdio) or `url` (streamable HTTP), not both")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("url must be an http:// or https:// URL")
        return self

    @property
    def transport(self) -> str:
        """`stdio` or `http`."""
        return "stdio" if self.command is not None else "http"


def _names(servers: dict[str, McpServer]) -> dict[str, McpServer]:
    for name in servers:
        if not SERVER_NAME.fullmatch(name):
            raise ValueError(
                f"server name {name!r} must be 1-32 letters, digits, '_' or '-' (it prefixes "
                "the tool names mcp__NAME__TOOL)"
            )
    return servers


class McpSettings(BaseModel):
    """`[mcp]`: the servers (`[mcp.servers.NAME]`) and the cap on one tool result."""

    model_config = ConfigDict(strict=True, extra="forbid")

    servers: Annotated[dict[str, McpServer], AfterValidator(_names)] = Field(default_factory=dict)
    output_cap_chars: int = Field(default=30_000, ge=1_000)
