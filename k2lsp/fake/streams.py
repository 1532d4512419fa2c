"""Parallel request streams on one fake K2 host: scripts routed by a marker in the messages
(each heavy-mode candidate, and the judge, get their own script whatever order requests
arrive in), and a host-wide prefix cache (cached tokens = the longest prefix shared with any
earlier request, as a real host's prefix cache serves parallel streams)."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from k2lsp.fake.script import ScriptItem

CACHE_MODES = ("last", "shared")


class Routes:
    """Scripts keyed by a marker text; the first marker found in a request's messages wins."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, list[ScriptItem]]] = []
        self._lock = threading.Lock()

    def add(self, marker: str, *items: ScriptItem) -> None:
        """Answer requests whose messages contain `marker` from `items` (appended, in order)."""
        with self._lock:
            for known, queue in self.routes:
                if known == marker:
                    queue.extend(items)
                    return
            self.routes.append((marker, list(items)))

    def pick(self, body: dict[str, Any], default: list[ScriptItem]) -> list[ScriptItem]:
        """The script that answers `body`: a route whose marker occurs and has items left."""
        texts = "\n".join(
            m["content"]
            for m in body.get("messages") or []
            if isinstance(m, dict) and isinstance(m.get("content"), str)
        )
        with self._lock:
            for marker, queue in self.routes:
                if marker in texts and queue:
                    return queue
        return default

    def remaining(self) -> int:
        """Items left over every route."""
        return sum(len(q) for _m, q in self.routes)


class PrefixCache:
    """Cached-token estimate of each request: `last` compares with the previous request,
    `shared` with every earlier one."""

    def __init__(self, mode: str = "last") -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"unknown prefix cache mode {mode!r}; choose one of {CACHE_MODES}")
        self.mode = mode
        self.seen: list[str] = []

    def cached_tokens(self, body: dict[str, Any]) -> int:
        """Tokens of `body`'s prefix the host would have cached (64-token blocks)."""
        prefix = json.dumps([body.get("tools"), body.get("messages")])
        pool = self.seen if self.mode == "shared" else self.seen[-1:]
        shared = max((len(os.path.commonprefix([prefix, p])) for p in pool), default=0)  # noqa: RUF071
        if self.mode == "shared":
            self.seen.append(prefix)
        else:
            self.seen = [prefix]
        return (shared // 4) // 64 * 64
