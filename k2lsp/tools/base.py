"""The tool contract: a pydantic args model (its JSON schema is what the model sees) plus a
function that returns text for the model.

Tool functions take ``(ctx: ToolContext, args: ArgsModel)`` and return ``str`` or
``ToolResult``; they may be sync (run in a worker thread) or async. A tool reports a problem the
model can act on by raising ``ToolError`` (or returning ``ToolResult(ok=False, ...)``); any
other exception is caught by the registry and reported to the model as an internal error, so
the loop always continues.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from k2lsp.code.filelist import ListingError
from k2lsp.errors import ToolError
from k2lsp.runs.changes import ChangeSet

__all__ = ["EventSink", "ToolError"]


class EventSink(Protocol):
    """What tools need of the agent's emitter (tools sit below the agent and never import it)."""

    def emit(self, type_: str, **fields: Any) -> Any:
        """Deliver one event of `type_`."""


if TYPE_CHECKING:
    from k2lsp.runs.workspace import Workspace
    from k2lsp.sandbox.base import Sandbox

# Default cap on text returned to the model by one tool call.
OUTPUT_CAP_CHARS = 30_000


@dataclass
class ToolResult:
    """What a tool call produced: text for the model and a one-line summary for humans."""

    ok: bool
    text: str
    summary: str = ""


# What a tool may write in the tools' folder: nothing; only files it records through
# `ToolContext.record_edit`; or anything (commands, test runs, MCP tools: the default).
Writes = Literal["none", "recorded", "any"]


class FileJournal:
    """What changed in the tools' folder since the code tools last looked (their repo map):
    the paths the editing tools recorded, or not known, after a tool that may write anything
    ran, and before the first look (whatever set the folder up came before). Tools run in
    worker threads: every step holds the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: set[str] = set()
        self._known = False

    def wrote(self, rel_path: str) -> None:
        """An editing tool wrote (or deleted) this path."""
        with self._lock:
            if self._known:
                self._paths.add(rel_path)

    def lose_track(self) -> None:
        """Something may have written anything: the next look is a full one."""
        with self._lock:
            self._known, self._paths = False, set()

    def pending(self) -> set[str] | None:
        """What the next look would be given, without taking it."""
        with self._lock:
            return set(self._paths) if self._known else None

    def take(self) -> set[str] | None:
        """For a look starting now: the paths changed since the last one, or None when that
        is not known. Writes from here on count for the next look."""
        with self._lock:
            out = self._paths if self._known else None
            self._known, self._paths = True, set()
            return out


@dataclass
class ToolContext:
    """What a tool may use. `workspace.root` is the run copy (never the user's tree in a run)."""

    workspace: Workspace
    sandbox: Sandbox | None = None
    emitter: EventSink | None = None
    settings: Any = None
    # Free-form state tools may share within one run (e.g. red/green test evidence).
    state: dict[str, Any] = field(default_factory=dict)
    # What the editing tools changed (first old text, last new text per path); the session
    # owns it and delivers from it (cross-checked against git, `k2lsp.runs.reconcile`).
    changes: ChangeSet = field(default_factory=ChangeSet)
    # What changed since the repo map last looked (its refresh then reads only those files).
    journal: FileJournal = field(default_factory=FileJournal)

    @property
    def root(self) -> Path:
        """The root folder the tools work in."""
        return self.workspace.root

    def record_edit(
        self, rel_path: str, diff: str, *, old: str | None, new: str | None, binary: bool = False
    ) -> None:
        """Note an edit made by a tool (the file's text before and after it, None = absent;
        `binary` when the old content was not text) and emit an `edit` event with its diff."""
        self.changes.record(rel_path, old, new, binary=binary)
        self.journal.wrote(rel_path)
        if self.emitter is not None:
            self.emitter.emit("edit", path=rel_path, diff=diff)


ToolFunc = Callable[[ToolContext, Any], "str | ToolResult | Awaitable[str | ToolResult]"]


@dataclass
class Tool:
    """One tool: name, description, argument model, implementation."""

    name: str
    description: str
    params: type[BaseModel]
    func: ToolFunc
    edits: bool = False  # does the tool change files? (read-only modes hide these)
    writes: Writes = "any"  # what it may write (the repo map's journal trusts only the others)

    def schema(self) -> dict[str, Any]:
        """The OpenAI `tools[]` entry (un-normalised; the model client normalises it)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.params.model_json_schema(),
            },
        }


def cap_output(text: str, limit: int = OUTPUT_CAP_CHARS, hint: str = "") -> str:
    """Cut `text` to `limit` characters, keeping head and tail, with a note on how to see more."""
    if len(text) <= limit:
        return text
    head = text[: limit * 2 // 3]
    tail = text[-(limit // 3) :]
    omitted = len(text) - len(head) - len(tail)
    note = f"\n[... {omitted} characters omitted{'; ' + hint if hint else ''} ...]\n"
    return head + note + tail


class ToolRegistry:
    """Named tools, in a stable order (the request prefix must stay byte-stable)."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, tool_: Tool) -> Tool:
        """Add a tool; registering the same name twice replaces it."""
        self._tools[tool_.name] = tool_
        return tool_

    def get(self, name: str) -> Tool | None:
        """The tool called `name`, or None."""
        return self._tools.get(name)

    def names(self) -> list[str]:
        """Tool names in registration order."""
        return list(self._tools)

    def tools(self, *, read_only: bool = False, only: list[str] | None = None) -> list[Tool]:
        """Tools offered to the model, optionally without editing tools or limited to `only`."""
        out = [t for t in self._tools.values() if not (read_only and t.edits)]
        if only is not None:
            out = [t for t in out if t.name in only]
        return out

    def extended(self, extra: list[Tool]) -> ToolRegistry:
        """A new registry with these tools followed by `extra` (e.g. a session's MCP tools)."""
        out = ToolRegistry()
        for tool_ in [*self._tools.values(), *extra]:
            out.register(tool_)
        return out

    def schemas(self, **kw: Any) -> list[dict[str, Any]]:
        """OpenAI tool entries for `tools(**kw)`."""
        return [t.schema() for t in self.tools(**kw)]

    async def execute(
        self, name: str, arguments: str | dict[str, Any], ctx: ToolContext
    ) -> ToolResult:
        """Run a tool call; every failure becomes a ToolResult(ok=False) the model can read."""
        tool_ = self._tools.get(name)
        if tool_ is None:
            known = ", ".join(self._tools)
            return ToolResult(
                False, f"Error: unknown tool {name!r}. Available tools: {known}.", "unknown tool"
            )
        try:
            raw = json.loads(arguments) if isinstance(arguments, str) else arguments
            if raw is None:
                raw = {}
            if not isinstance(raw, dict):
                raise ToolError("arguments must be a JSON object")
            args = tool_.params.model_validate(raw)
        except json.JSONDecodeError as exc:
            return ToolResult(
                False,
                f"Error: the arguments are not valid JSON ({exc}). "
                "Send a single JSON object matching the tool's schema.",
                "bad JSON",
            )
        except ValidationError as exc:
            return ToolResult(
                False,
                f"Error: invalid arguments for {name}: {_short_validation(exc)}",
                "invalid arguments",
            )
        except (ToolError, ListingError) as exc:  # a listing failure is the model's to read
            return ToolResult(False, f"Error: {exc}", str(exc)[:80])
        try:
            if inspect.iscoroutinefunction(tool_.func):
                out = await tool_.func(ctx, args)
            else:
                out = await asyncio.to_thread(tool_.func, ctx, args)
        except (ToolError, ListingError) as exc:  # a listing failure is the model's to read
            return ToolResult(
                False, f"Error: {exc}", str(exc).splitlines()[0][:120] if str(exc) else "error"
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a tool bug must not kill the run
            return ToolResult(
                False,
                f"Error: tool {name} failed internally: {type(exc).__name__}: {exc}",
                "internal tool error",
            )
        finally:  # failed or cancelled part-way too: it may have written some of it
            if tool_.writes == "any":
                ctx.journal.lose_track()
        if isinstance(out, ToolResult):
            return out
        text = str(out)
        return ToolResult(True, text, text.splitlines()[0][:120] if text else "")


def _short_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)


REGISTRY = ToolRegistry()


def tool(
    name: str,
    params: type[BaseModel],
    *,
    writes: Writes,
    edits: bool = False,
    registry: ToolRegistry | None = None,
) -> Callable[[ToolFunc], ToolFunc]:
    """Decorator registering `func` as tool `name`; the description is the function docstring.
    `writes` is required: what the tool may write decides whether the repo map can trust the
    journal after it ran."""

    def deco(func: ToolFunc) -> ToolFunc:
        doc = inspect.cleandoc(func.__doc__ or name)
        (registry or REGISTRY).register(Tool(name, doc, params, func, edits, writes))
        return func

    return deco
