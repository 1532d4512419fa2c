"""The language-server tools (`references`, `rename_symbol`, `diagnostics`) and `rewrite`, on
small projects, against the real jedi-language-server over stdio (confined by bubblewrap)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from k2lsp.agent.events import Emitter, Event
from k2lsp.lspc.servers import ServerSpec, bwrap_argv, bwrap_works, find_server
from k2lsp.runs.workspace import Workspace
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext, ToolResult
from k2lsp.tools.refs import close_servers

needs_jedi = pytest.mark.skipif(find_server("python") is None, reason="no jedi-language-server")

PKG = {
    "pkg/__init__.py": "",
    "pkg/core.py": (
        "def load(path):\n    return open(path).read()\n\n\ndef other():\n    return load('x')\n"
    ),
    "pkg/cache.py": (
        "class Cache:\n    def load(self, key):\n        return key\n\n\n"
        "def warm(c):\n    return c.load('k')\n"
    ),
    "pkg/use.py": (
        "from pkg.core import load\nfrom pkg import core\n\n\ndef main():\n"
        "    # load is mentioned here\n    text = load('a') + core.load('b')\n"
        "    return text, 'load'\n"
    ),
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    for rel, text in PKG.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def call(ctx: ToolContext, name: str, **args: Any) -> ToolResult:
    return asyncio.run(build_registry().execute(name, args, ctx))


@pytest.fixture
def tool_ctx(project: Path) -> Any:
    events: list[Event] = []
    ctx = ToolContext(Workspace(project), emitter=Emitter("t", [events.append]))
    yield ctx
    close_servers(ctx.state)


@needs_jedi
def test_references_are_scope_aware_where_name_matching_is_not(tool_ctx: ToolContext) -> None:
    res = call(tool_ctx, "references", path="pkg/core.py", symbol="load")
    assert res.ok, res.text
    assert "jedi-language-server" in res.text and "FALLBACK" not in res.text
    hits = {line.split(": ")[0] for line in res.text.splitlines()[1:]}
    assert hits == {
        "pkg/core.py:1:5",
        "pkg/core.py:6:12",
        "pkg/use.py:1:22",
        "pkg/use.py:7:12",
        "pkg/use.py:7:29",
    }  # fmt: skip  (not Cache.load, its call, the comment or the string)


@needs_jedi
def test_rename_symbol_applies_the_servers_rename_through_the_gate(
    tool_ctx: ToolContext, project: Path
) -> None:
    res = call(tool_ctx, "rename_symbol", path="pkg/core.py", symbol="load", new_name="read_path")
    assert res.ok, res.text
    assert "at 5 sites in 2 files" in res.text
    assert (project / "pkg/cache.py").read_text() == PKG["pkg/cache.py"]
    use = (project / "pkg/use.py").read_text()
    assert "read_path('a') + core.read_path('b')" in use and "# load is mentioned" in use
    assert tool_ctx.changes.paths() == ["pkg/core.py", "pkg/use.py"]


@needs_jedi
def test_rename_symbol_limited_to_paths_reports_the_rest(
    tool_ctx: ToolContext, project: Path
) -> None:
    res = call(
        tool_ctx, "rename_symbol", path="pkg/core.py", symbol="load", new_name="rd",
        paths=["pkg/use.py"],
    )  # fmt: skip
    assert res.ok, res.text
    assert "Not changed (outside `paths`): 1 file: pkg/core.py" in res.text
    assert (project / "pkg/core.py").read_text() == PKG["pkg/core.py"]


def test_rename_refuses_a_bad_name_and_a_missing_symbol(tool_ctx: ToolContext) -> None:
    bad = call(tool_ctx, "rename_symbol", path="pkg/core.py", symbol="load", new_name="a-b")
    assert not bad.ok and "not an identifier" in bad.text
    missing = call(tool_ctx, "references", path="pkg/core.py", symbol="nothere")
    assert not missing.ok and "does not occur" in missing.text


def test_without_a_server_the_tools_fall_back_and_say_so(
    tool_ctx: ToolContext, project: Path
) -> None:
    tool_ctx.settings = type("S", (), {"lsp_enabled": False})()
    res = call(tool_ctx, "references", path="pkg/core.py", symbol="load")
    assert res.ok and "FALLBACK tree-sitter name matching" in res.text
    assert "pkg/cache.py:2:9" in res.text  # a same-named method: name matching cannot tell
    assert "pkg/use.py:6" not in res.text  # but comments and strings are not identifiers
    ren = call(tool_ctx, "rename_symbol", path="pkg/core.py", symbol="load", new_name="rd")
    assert ren.ok and "FALLBACK" in ren.text
    assert "def rd(self, key)" in (project / "pkg/cache.py").read_text()


@needs_jedi
def test_diagnostics_show_the_errors_an_edit_introduced(
    tool_ctx: ToolContext, project: Path
) -> None:
    base = {rel: text for rel, text in PKG.items()}
    tool_ctx.state["base_text"] = base.get
    res = call(
        tool_ctx, "edit_file", path="pkg/core.py", old_text="def other():", new_text="def other(:"
    )
    assert not res.ok and "edit refused" in res.text  # the gate stops a broken parse first
    broken = PKG["pkg/core.py"] + "\n\ndef f(:\n    pass\n"  # as a command might write it
    (project / "pkg/core.py").write_text(broken)
    tool_ctx.changes.record("pkg/core.py", PKG["pkg/core.py"], broken)
    diag = call(tool_ctx, "diagnostics")
    assert diag.ok
    assert "pkg/core.py:9: NEW error" in diag.text, diag.text


def test_rewrite_dry_run_then_apply_with_the_gate(tool_ctx: ToolContext, project: Path) -> None:
    # `load($A)` is a call of the name load: not core.load(...) nor c.load(...)
    dry = call(tool_ctx, "rewrite", pattern="load($A)", replacement="load($A, mode='r')")
    assert dry.ok and dry.text.startswith("Dry run: 2 matches in 2 files."), dry.text
    assert (project / "pkg/use.py").read_text() == PKG["pkg/use.py"]
    done = call(
        tool_ctx, "rewrite", pattern="load($A)", replacement="load($A, mode='r')",
        paths=["pkg/use.py"], apply=True,
    )  # fmt: skip
    assert done.ok and "Rewrote 1 match in 1 file." in done.text
    assert "load('a', mode='r') + core.load('b')" in (project / "pkg/use.py").read_text()
    broken = call(tool_ctx, "rewrite", pattern="c.load($A)", replacement="c.load($A))", apply=True)
    assert not broken.ok and "REFUSED pkg/cache.py" in broken.text
    assert (project / "pkg/cache.py").read_text() == PKG["pkg/cache.py"]


@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap does not work here")
def test_a_confined_server_cannot_write_or_reach_the_network(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    root.mkdir()
    (root / "a.py").write_text("x = 1\n")
    outside = tmp_path / "outside.txt"  # /tmp is a private tmpfs in there: lands nowhere
    var_tmp = Path("/var/tmp") / f"k2lsp-probe-{tmp_path.name}"  # the real, read-only disk
    probe = (
        "import socket, pathlib, sys\n"
        "out = []\n"
        f"for p in ({str(root / 'new.txt')!r}, {str(var_tmp)!r}, {str(outside)!r}):\n"
        "    try:\n        pathlib.Path(p).write_text('x'); out.append('wrote ' + p)\n"
        "    except OSError:\n        out.append('no write')\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=3); out.append('net')\n"
        "except OSError:\n    out.append('no net')\n"
        f"out.append(pathlib.Path({str(root / 'a.py')!r}).read_text().strip())\n"
        "print(';'.join(out))\n"
    )
    spec = ServerSpec("python", (sys.executable, "-c", probe))
    proc = subprocess.run(bwrap_argv(spec, root), capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().startswith("no write;no write;"), proc.stderr
    assert proc.stdout.strip().endswith(";no net;x = 1"), proc.stdout
    assert not outside.exists() and not (root / "new.txt").exists() and not var_tmp.exists()
    assert shutil.which("bwrap")


def test_the_new_tools_never_touch_git_metadata_or_secrets(
    tool_ctx: ToolContext, project: Path
) -> None:
    hook = project / ".git" / "hooks" / "load.py"
    hook.parent.mkdir(parents=True)
    hook.write_text("def load(path):\n    return path\n")
    (project / ".env.py").write_text("load = 'sk-secret'\n")
    for name, args in (
        ("references", {"path": ".git/hooks/load.py", "symbol": "load"}),
        ("rename_symbol", {"path": ".GIT/hooks/load.py", "symbol": "load", "new_name": "x"}),
        ("references", {"path": "../proj/.git/hooks/load.py", "symbol": "load"}),
    ):
        res = call(tool_ctx, name, **args)
        assert not res.ok and ".git" in res.text.lower(), (name, res.text)
    if find_server("python") is not None:  # the server sees the file; the model does not
        refs = call(tool_ctx, "references", path="pkg/core.py", symbol="load")
        assert refs.ok and ".env.py" not in refs.text and "sk-secret" not in refs.text
    tool_ctx.settings = type("S", (), {"lsp_enabled": False})()
    ren = call(tool_ctx, "rename_symbol", path="pkg/core.py", symbol="load", new_name="rd")
    assert ".git" not in ren.text and "SKIPPED .env.py: on the secret denylist" in ren.text
    assert (project / ".env.py").read_text() == "load = 'sk-secret'\n"
    refs = call(tool_ctx, "references", path="pkg/core.py", symbol="load")
    assert ".env.py" not in refs.text and "sk-secret" not in refs.text
    rew = call(
        tool_ctx, "rewrite", pattern="load($A)", replacement="x($A)", paths=[".git"], apply=True
    )
    assert rew.ok and "Rewrote 0 matches" in rew.text
    assert "def load(path)" in hook.read_text()
