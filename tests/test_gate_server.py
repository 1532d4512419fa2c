"""The syntax gate's second judge: a language server the run already has. TypeScript's own
checker refuses code tree-sitter parses (`const x;`, a top-level `return`); with
typescript-language-server running in the run, every editing tool refuses such an edit with
the server's message and line, and writes nothing. Real typescript-language-server over stdio
(fetched once by bench/refactor_corpus.py, as CI does)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from refactor_helpers import typescript_or_skip

from k2lsp.code.gate import check_edit
from k2lsp.runs.workspace import Workspace
from k2lsp.tools import build_registry, fileops
from k2lsp.tools.base import ToolContext, ToolResult
from k2lsp.tools.refs import close_servers

A_TS = "export function add(a: number, b: number): number {\n  return a + b;\n}\n"
B_TS = 'import { add } from "./a";\n\nexport const total = add(1, 2);\n'


@pytest.fixture(scope="module")
def tsls() -> Path:
    return typescript_or_skip()[1]


@pytest.fixture
def ctx(tmp_path: Path, tsls: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # A busy machine may take the server longer than the product's short wait to publish:
    # the verdicts here must not depend on the machine's speed.
    monkeypatch.setattr(fileops, "GATE_SERVER_WAIT_S", 20.0)
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "tsconfig.json").write_text('{"compilerOptions": {"strict": true}, "include": ["src"]}')
    (root / "src" / "a.ts").write_text(A_TS)
    (root / "src" / "b.ts").write_text(B_TS)
    settings = SimpleNamespace(lsp_servers={"typescript": [str(tsls), "--stdio"]})
    ctx = ToolContext(Workspace(root), settings=settings)
    yield ctx
    close_servers(ctx.state)


async def call(ctx: ToolContext, name: str, **args: Any) -> ToolResult:
    # One event loop per test: the server lives as long as the worker thread that started it
    # (bubblewrap's --die-with-parent), as in a run.
    return await build_registry().execute(name, args, ctx)


def test_tree_sitter_alone_lets_these_through() -> None:
    """What this file is about: tree-sitter parses all of them."""
    for text in ("const x;\n", "return 2;\n", "let a = 1;\nbreak;\n"):
        check_edit("src/a.ts", A_TS, A_TS + text)


async def test_a_running_server_refuses_what_typescript_does_not_parse(ctx: ToolContext) -> None:
    root = ctx.root
    started = await call(ctx, "diagnostics", paths=["src/a.ts"])  # the run now has a server
    assert started.ok and "typescript-language-server" in started.text, started.text

    res = await call(
        ctx, "edit_file", path="src/a.ts", old_text="  return a + b;", new_text="  const x;"
    )
    assert not res.ok
    assert "typescript-language-server says TS1155" in res.text and "line 2" in res.text
    assert "nothing was written" in res.text
    assert (root / "src" / "a.ts").read_text() == A_TS

    res = await call(
        ctx, "create_file", path="src/c.ts", content="export const c = 1;\nreturn c;\n"
    )
    assert not res.ok and "TS1108" in res.text and "line 2" in res.text
    assert not (root / "src" / "c.ts").exists()

    patch = (
        "--- a/src/b.ts\n+++ b/src/b.ts\n@@ -3 +3,2 @@\n export const total = add(1, 2);\n+break;\n"
    )
    res = await call(ctx, "apply_patch", patch=patch)
    assert not res.ok and "TS1105" in res.text
    assert (root / "src" / "b.ts").read_text() == B_TS

    body = A_TS.replace("return a + b;", "const y;\n  return a;").rstrip("\n")
    res = await call(ctx, "replace_symbol", path="src/a.ts", symbol="add", code=body)
    assert not res.ok and "TS1155" in res.text
    assert (root / "src" / "a.ts").read_text() == A_TS

    # What the server accepts goes through, and the server sees the file as written.
    res = await call(ctx, "edit_file", path="src/a.ts", old_text="a + b", new_text="b + a")
    assert res.ok, res.text
    assert (root / "src" / "a.ts").read_text() == A_TS.replace("a + b", "b + a")
    after = await call(ctx, "diagnostics", paths=["src/a.ts"])
    assert after.ok and "no new problems" in after.text, after.text


async def test_a_file_already_broken_may_be_edited_if_it_gets_no_worse(ctx: ToolContext) -> None:
    root = ctx.root
    broken = A_TS + "const x;\n"
    (root / "src" / "a.ts").write_text(broken)
    assert (await call(ctx, "diagnostics", paths=["src/a.ts"])).ok
    res = await call(ctx, "edit_file", path="src/a.ts", old_text="a + b", new_text="b + a")
    assert res.ok, res.text
    res = await call(
        ctx, "edit_file", path="src/a.ts", old_text="const x;", new_text="const x = 1;"
    )
    assert res.ok, res.text  # and fixing it is welcome
    res = await call(
        ctx, "edit_file", path="src/a.ts", old_text="const x = 1;", new_text="const x;"
    )
    assert not res.ok and "TS1155" in res.text
