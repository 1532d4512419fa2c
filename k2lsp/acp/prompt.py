"""An ACP prompt (text, resource links, embedded resources, `@path` mentions) -> the parts of a
`RunRequest`: the task text, the context, the focus paths and the overlay of open buffers.

A linked or mentioned file inside the session folder becomes a focus path and, when the client
offers `fs/read_text_file`, its buffer text (saved or not) becomes the run copy's start state
and part of the context. An embedded resource's text is given as it is (the client already
read it from the buffer). Files outside the folder are context only, never written.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

MENTION = re.compile(r"(?<![\w@])@([\w./-]*[\w/-])")  # @src/app.py, not user@host
CONTEXT_CAP = 60_000  # characters of attached text per file

# (absolute path) -> the client's buffer text, or None when it cannot be read
ReadFn = Callable[[str], Awaitable[str | None]]
SecretFn = Callable[[str], bool]  # relative path -> is it a secret file (never sent)?


@dataclass
class PromptParts:
    """What one prompt asks for."""

    task: str = ""
    context: list[str] = field(default_factory=list)
    focus: list[str] = field(default_factory=list)
    overlay: dict[str, str] = field(default_factory=dict)
    shown: str = ""  # the prompt as the user wrote it (for the session history)
    secret: SecretFn = field(default=lambda _rel: False, repr=False)


def rel_path(root: Path, uri_or_path: str) -> str | None:
    """The path of a `file://` URI or a path, relative to `root`; None when outside it."""
    text = uri_or_path
    if text.startswith("file://"):
        text = unquote(urlsplit(text).path)
    elif "://" in text:
        return None
    path = Path(text)
    if not path.is_absolute():
        path = root / path
    try:
        rel = path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    return rel.as_posix() if rel.parts else None


async def prompt_parts(
    blocks: list[Any], root: Path, read: ReadFn, secret: SecretFn = lambda _rel: False
) -> PromptParts:
    """Turn the prompt's content blocks into a `PromptParts` (reading linked files via `read`;
    files `secret` matches are named, never read or sent)."""
    parts = PromptParts()
    parts.secret = secret
    texts: list[str] = []
    for block in blocks:
        kind = getattr(block, "type", "")
        if kind == "text":
            texts.append(block.text)
        elif kind == "resource_link":
            texts.append(f"@{rel_path(root, block.uri) or block.uri}")
            await _attach(parts, root, block.uri, None, read)
        elif kind == "resource":
            res = block.resource
            body = getattr(res, "text", None)
            texts.append(f"@{rel_path(root, res.uri) or res.uri}")
            if body is None:
                parts.context.append(f"[{res.uri}: binary content, not shown]")
            else:
                await _attach(parts, root, res.uri, body, read)
        else:
            parts.context.append(f"[{kind or 'unknown'} content attached; K2 reads text only]")
    parts.shown = " ".join(t.strip() for t in texts if t.strip())
    for mention in MENTION.findall(" ".join(t for t in texts)):
        rel = rel_path(root, mention)
        if rel and rel not in parts.focus and (root / rel).is_file():
            await _attach(parts, root, str(root / rel), None, read)
    parts.task = parts.shown
    return parts


async def _attach(parts: PromptParts, root: Path, uri: str, body: str | None, read: ReadFn) -> None:
    rel = rel_path(root, uri)
    if rel is not None and parts.secret(rel):
        if rel not in parts.focus:
            parts.focus.append(rel)
            parts.context.append(
                f"[{rel} is a secret file (secret_globs): its content is not shared; the user "
                "can set allow_secrets to share it]"
            )
        return
    if body is None:
        path = str(root / rel) if rel else unquote(urlsplit(uri).path)
        if rel is None and not uri.startswith("file://"):
            parts.context.append(f"[linked resource {uri}: not readable here]")
            return
        body = await read(path)
    if rel is not None and rel not in parts.focus:
        parts.focus.append(rel)
        if body is not None:
            parts.overlay[rel] = body
    if body is None:
        parts.context.append(f"[{rel or uri}: could not be read]")
        return
    shown = body if len(body) <= CONTEXT_CAP else body[:CONTEXT_CAP] + "\n[… cut]"
    parts.context.append(f"The user attached {rel or uri}:\n```\n{shown}\n```")
