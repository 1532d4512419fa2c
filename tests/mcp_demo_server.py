"""A small real MCP server for the tests (stdio, or streamable HTTP with `--http PORT`).

Tools: `lookup_release(package)` answers from a fixed table; `show_token()` returns the
DEMO_TOKEN it was started with (the client must redact it); `bad_schema` is advertised with
an input schema that is not valid JSON schema (the client must skip it).
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

RELEASES = {"zlib": "1.3.1", "requests": "2.32.3", "left-pad": "1.3.0"}

server = MCPServer("k2lsp-demo")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def lookup_release(package: str) -> str:
    """The latest release of `package` in the demo catalogue."""
    version = RELEASES.get(package)
    return f"{package} latest release: {version}" if version else f"{package}: not in catalogue"


@server.tool()
def show_token() -> str:
    """Return the token this server was started with."""
    return "token=" + os.environ.get("DEMO_TOKEN", "")


@server.tool()
def has_env(name: str) -> str:
    """Whether the environment variable `name` is set in this server."""
    return f"{name}: {'set' if name in os.environ else 'unset'}"


@server.tool(name="bad-schema")
def bad_schema(x: int) -> str:
    """A tool whose schema is broken below."""
    return str(x)


def _break_schema() -> None:
    """Make `bad-schema`'s advertised input schema invalid (a property of type 12)."""
    tool = server._tool_manager.get_tool("bad-schema")
    assert tool is not None
    tool.parameters = {"type": "object", "properties": {"x": {"type": 12}}}


if __name__ == "__main__":
    _break_schema()
    print(f"demo server starting, token={os.environ.get('DEMO_TOKEN', '')}", file=sys.stderr)
    if os.environ.get("DEMO_PIDFILE"):  # tests check that the server is stopped
        with open(os.environ["DEMO_PIDFILE"], "w") as fh:
            fh.write(str(os.getpid()))
    if len(sys.argv) > 2 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
