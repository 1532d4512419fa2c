"""One MCP server tool as a k2lsp `Tool`: a checked schema, a namespaced name, approval before
each call (unless the server's `allow_tools` globs allow it), arguments validated against the
schema, and a result turned into capped, redacted text for the model."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from k2lsp.errors import ToolError, UsageError
from k2lsp.redact import redact
from k2lsp.tools.base import Tool, ToolContext, ToolResult, cap_output

PREFIX = "mcp__"
NAME_MAX = 64
DESCRIPTION_MAX = 2_000

# (tool name on the server, arguments) -> the server's CallToolResult
CallFn = Callable[[str, dict[str, Any]], Awaitable[Any]]


class AnyArgs(BaseModel):
    """Arguments of an MCP tool: any JSON object (checked against the server's schema)."""

    model_config = ConfigDict(extra="allow")


def tool_name(server: str, name: str) -> str:
    """`mcp__SERVER__TOOL` with characters K2 does not accept replaced, at most 64 long."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return f"{PREFIX}{server}__{safe}"[:NAME_MAX]


def check_schema(schema: Any) -> dict[str, Any]:
    """The server's input schema if it is a valid JSON schema of an object; else ValueError."""
    import jsonschema

    from k2lsp.model.request import normalize_parameters

    if schema is None:
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise ValueError(f"the input schema is a {type(schema).__name__}, not an object")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
        normalize_parameters(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"invalid JSON schema: {exc.message}") from None
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    return schema


@dataclass
class McpTool(Tool):
    """A k2lsp tool backed by an MCP server; `schema()` is the server's (checked) schema."""

    server: str = ""
    remote_name: str = ""
    input_schema: dict[str, Any] | None = None

    def schema(self) -> dict[str, Any]:
        """The OpenAI `tools[]` entry with the server's input schema."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.input_schema or {"type": "object", "properties": {}},
            },
        }


def make_tool(
    server: str,
    remote: Any,
    call: CallFn,
    *,
    allow: list[str],
    cap: int,
    timeout_s: float,
) -> McpTool:
    """The k2lsp tool of MCP tool `remote` (an `mcp.types.Tool`) of `server`; ValueError when
    its schema is not usable."""
    import jsonschema

    schema = check_schema(remote.input_schema)
    validator = jsonschema.validators.validator_for(schema)(schema)
    name = tool_name(server, remote.name)
    hints = getattr(remote, "annotations", None)
    read_only = bool(getattr(hints, "read_only_hint", False))
    allowed = any(fnmatch.fnmatchcase(remote.name, g) for g in allow)
    text = redact(str(remote.description or remote.title or remote.name))[:DESCRIPTION_MAX]
    description = f"[MCP server {server}] {text}"

    async def run(ctx: ToolContext, args: BaseModel) -> ToolResult:
        raw = args.model_dump()
        errors = sorted(validator.iter_errors(raw), key=lambda e: list(e.path))
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(root)"
            raise ToolError(f"invalid arguments for {name}: {where}: {errors[0].message}")
        if not allowed:
            await _approve(ctx, name, raw)
        try:
            async with asyncio.timeout(timeout_s):
                result = await call(remote.name, raw)
        except TimeoutError:
            raise ToolError(f"{name} did not answer within {timeout_s:.0f}s") from None
        except Exception as exc:
            raise ToolError(f"{name} failed: {redact(str(exc))[:500]}") from None
        out = cap_output(redact(result_text(result)), cap, "ask the tool for less")
        ok = not bool(getattr(result, "is_error", False))
        return ToolResult(ok, out, (out.splitlines() or [""])[0][:120])

    return McpTool(
        name,
        description,
        AnyArgs,
        run,
        edits=not read_only,
        server=server,
        remote_name=remote.name,
        input_schema=schema,
    )


async def _approve(ctx: ToolContext, name: str, args: dict[str, Any]) -> None:
    approve: Any = ctx.state.get("approve")
    detail = f"{name} {json.dumps(args, ensure_ascii=False)[:400]}"
    if approve is None:
        raise ToolError(
            f"{name} needs the user's approval and no one is there to give it; the user can "
            "allow it with allow_tools globs in [mcp.servers.NAME] of k2lsp.toml"
        )
    if not await approve("mcp", detail):
        raise ToolError(f"the user declined the call of {name}")


def result_text(result: Any) -> str:
    """The text of a `CallToolResult`: text blocks, resource texts, and a note per other block."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(str(block.text))
        elif kind == "resource":
            res = block.resource
            body = getattr(res, "text", None)
            parts.append(
                f"[resource {res.uri}]\n{body}" if body is not None else f"[binary {res.uri}]"
            )
        elif kind == "resource_link":
            parts.append(f"[resource link {block.uri}: {block.name}]")
        else:
            parts.append(f"[{kind or 'unknown'} content omitted]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False, indent=1))
    return "\n".join(parts) or "(no output)"
