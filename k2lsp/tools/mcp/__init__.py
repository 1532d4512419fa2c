"""The MCP client: servers from `[mcp.servers.NAME]` (and an ACP client's `mcpServers`) become
tools the model can call, named `mcp__NAME__TOOL`.

`McpHub` (hub.py) starts and keeps the connections; `bridge.py` turns each server tool into a
k2lsp `Tool` whose schema is checked, whose calls go through the approval policy and whose
results are capped and redacted.
"""
