"""Shared fixtures: a started fake K2 server, the env that points k2lsp at it, and a tool
context confined to a temporary workspace."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from k2lsp.agent.events import Emitter, Event
from k2lsp.fake.server import FakeK2Server
from k2lsp.runs.workspace import Workspace
from k2lsp.tools.base import ToolContext

TEST_KEY = "sk-test-k2lsp-0123456789abcdefghij"

if TYPE_CHECKING:
    from tests.lsp_fixtures import Editor


@pytest.fixture
def fake() -> Iterator[FakeK2Server]:
    """A started fake K2 host with an empty script that lists kimi-k2-thinking among its
    models (what a language server's start-up check asks); add replies with `fake.add`."""
    srv = FakeK2Server([], models=["kimi-k2-thinking"])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def editor(tmp_path: Path, fake: FakeK2Server) -> AsyncIterator[Editor]:
    """`k2lsp --stdio` driven by a pytest-lsp client, on `make_project(tmp_path / "proj")`
    (a module defines its own `editor` for another project or other options)."""
    from tests.lsp_fixtures import make_project, start_editor, stop_editor

    ed = await start_editor(make_project(tmp_path / "proj"), fake.base_url, tmp_path / "home")
    yield ed
    await stop_editor(ed)


@pytest.fixture
def fake_k2() -> Iterator[FakeK2Server]:
    """A started FakeK2Server with an empty script; add replies with `fake_k2.add(...)`."""
    srv = FakeK2Server()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def make_k2_env(base_url: str, model: str = "kimi-k2-thinking") -> dict[str, str]:
    """A copy of os.environ pointing k2lsp at `base_url` (for subprocesses)."""
    env = dict(os.environ)
    env.update(
        K2LSP_BASE_URL=base_url,
        K2LSP_API_KEY=TEST_KEY,
        K2LSP_MODEL=model,
        K2LSP_PROVIDER="openai-compatible",
    )
    return env


@pytest.fixture
def k2_env(fake_k2: FakeK2Server) -> dict[str, str]:
    """Env dict (K2LSP_BASE_URL/API_KEY/MODEL/PROVIDER) pointing at the `fake_k2` server."""
    return make_k2_env(fake_k2.base_url)


@pytest.fixture
def k2_env_for() -> Callable[..., dict[str, str]]:
    """Factory: `k2_env_for(base_url, model=...)` -> env dict, for servers a test starts itself."""
    return make_k2_env


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A workspace folder for tool tests (tmp_path itself holds files 'outside' it)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def events() -> list[Event]:
    """The events a tool test's context emitted."""
    return []


@pytest.fixture
def ctx(root: Path, events: list[Event]) -> ToolContext:
    """A tool context confined to `root` that records its events."""
    return ToolContext(Workspace(root), emitter=Emitter("run-test", [events.append]))
