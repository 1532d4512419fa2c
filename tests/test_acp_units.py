"""The ACP front-end's pure parts: event mapping, prompt parsing, the session store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from acp import embedded_text_resource, resource_block, resource_link_block, text_block

from k2lsp.acp import store
from k2lsp.acp.prompt import prompt_parts, rel_path
from k2lsp.acp.updates import UpdateMapper, hunks, tool_kind
from k2lsp.agent.events import Event
from k2lsp.errors import UsageError
from k2lsp.runs.changes import unified_diff


def _ev(type_: str, **data: Any) -> Event:
    return Event(type_, "run", 1, data)


def test_hunks_give_old_and_new_text_with_context() -> None:
    old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\n"
    new = old.replace("b\n", "B\n").replace("k\n", "K\nK2\n")
    found = hunks(unified_diff("x.py", "x.py", old, new))
    assert len(found) == 2
    assert "b\n" in found[0][0] and "B\n" in found[0][1] and "B\n" not in found[0][0]
    assert found[1][1].count("K") == 2


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("read_file", "read"),
        ("search", "search"),
        ("apply_patch", "edit"),
        ("delete_file", "delete"),
        ("run_tests", "execute"),
        ("mcp__docs__find", "fetch"),
        ("something_new", "other"),
    ],
)
def test_tool_kinds(name: str, kind: str) -> None:
    assert tool_kind(name) == kind


def test_an_edit_shows_as_diff_on_its_tool_call_and_in_the_plan(tmp_path: Path) -> None:
    m = UpdateMapper(tmp_path, goal="fix add")
    assert m.map(_ev("run_started", task="fix add"))[0].entries[0].status == "in_progress"
    start = m.map(_ev("tool_call", id="c1", name="edit_file", args={"path": "calc.py"}))[0]
    assert start.kind == "edit" and start.locations[0].path == str(tmp_path / "calc.py")
    diff = unified_diff("calc.py", "calc.py", "return a - b\n", "return a + b\n")
    update, plan = m.map(_ev("edit", path="calc.py", diff=diff))
    assert update.tool_call_id == "c1" and update.content[0].new_text == "return a + b\n"
    assert [e.content for e in plan.entries][:2] == ["fix add", "edit calc.py"]
    done = m.map(_ev("tool_result", id="c1", name="edit_file", ok=True, summary="ok", text="ok"))
    assert done[0].status == "completed" and done[0].content[0].type == "diff"
    end = m.map(_ev("run_finished", outcome="success", exit_code=0, summary="done"))
    assert end[-1].entries[0].status == "completed"


def test_read_locations_carry_the_line_and_odd_args_are_ignored(tmp_path: Path) -> None:
    m = UpdateMapper(tmp_path)
    args = {"path": "a.py", "start_line": 40}
    start = m.map(_ev("tool_call", id="r", name="read_file", args=args))[0]
    assert (start.locations[0].path, start.locations[0].line) == (str(tmp_path / "a.py"), 40)
    odd = m.map(_ev("tool_call", id="o", name="git_diff", args={"paths": "x", "start_line": True}))
    assert odd[0].locations is None
    raw = m.map(_ev("tool_call", id="j", name="edit_file", args="{not json"))[0]
    assert raw.title == "edit_file" and raw.raw_input == "{not json"


def test_cancelled_calls_are_closed_as_failed(tmp_path: Path) -> None:
    m = UpdateMapper(tmp_path)
    m.map(_ev("tool_call", id="c9", name="run_tests", args={}))
    closed = m.map(_ev("run_finished", outcome="cancelled", exit_code=130, summary=""))
    assert closed[0].tool_call_id == "c9" and closed[0].status == "failed"


async def test_prompt_blocks_become_task_context_focus_and_overlay(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("on disk\n")
    (tmp_path / "README.md").write_text("readme\n")
    outside = tmp_path.parent / "secret.txt"

    async def read(path: str) -> str | None:
        return "buffer of " + Path(path).name

    blocks = [
        text_block("explain @src/app.py and mail me@example.com"),
        resource_link_block("README.md", (tmp_path / "README.md").as_uri()),
        resource_block(embedded_text_resource(outside.as_uri(), "pasted text")),
    ]
    parts = await prompt_parts(blocks, tmp_path, read)
    assert parts.focus == ["README.md", "src/app.py"]
    assert parts.overlay == {"README.md": "buffer of README.md", "src/app.py": "buffer of app.py"}
    joined = "\n".join(parts.context)
    assert "pasted text" in joined and "buffer of app.py" in joined
    assert "secret.txt" not in parts.overlay and "example.com" not in parts.focus
    assert parts.task.startswith("explain @src/app.py")


async def test_secret_files_are_named_but_never_read_or_sent(tmp_path: Path) -> None:
    from k2lsp.runs.workspace import Workspace

    (tmp_path / ".env").write_text("API_KEY=sk-live-123\n")
    read_paths: list[str] = []

    async def read(path: str) -> str | None:
        read_paths.append(path)
        return "API_KEY=sk-live-123\n"

    secret = Workspace(tmp_path).is_secret
    blocks = [
        text_block("why does @.env not load"),
        resource_block(embedded_text_resource((tmp_path / ".env").as_uri(), "API_KEY=x")),
    ]
    parts = await prompt_parts(blocks, tmp_path, read, secret)
    assert read_paths == [] and parts.overlay == {}
    joined = "\n".join(parts.context)
    assert "secret file" in joined and "API_KEY" not in joined


def test_paths_outside_the_folder_are_not_ours(tmp_path: Path) -> None:
    assert rel_path(tmp_path, str(tmp_path / "a" / "b.py")) == "a/b.py"
    assert rel_path(tmp_path, "../x.py") is None
    assert rel_path(tmp_path, "https://example.com/x.py") is None
    (tmp_path / "link").symlink_to(tmp_path.parent)
    assert rel_path(tmp_path, "link/x.py") is None


def test_store_round_trip_and_hostile_ids(tmp_path: Path) -> None:
    rec = store.SessionRecord(store.new_session_id(), str(tmp_path), "plan")
    rec.turns.append(store.Turn("hi", "r1", str(tmp_path / "none.jsonl"), "success", "hello"))
    store.save(tmp_path, rec)
    back = store.load(tmp_path, rec.id)
    assert back == rec
    replayed = list(store.replay(back))
    assert [u.session_update for u in replayed] == ["user_message_chunk", "agent_message_chunk"]
    for bad in ("../../etc/passwd", "0" * 31, "Z" * 32):
        with pytest.raises(UsageError):
            store.load(tmp_path, bad)


async def test_bad_requests_get_readable_errors(tmp_path: Path) -> None:
    from acp import RequestError

    from k2lsp.acp.agent import K2Agent

    agent = K2Agent()
    for cwd in ("relative/dir", str(tmp_path / "missing")):
        with pytest.raises(RequestError, match="absolute path of an existing folder"):
            await agent.new_session(cwd=cwd)
    (tmp_path / "k2lsp.toml").write_text("max_steps = -5\n")
    with pytest.raises(RequestError, match=r"max_steps: must be >= 1 \(got -5\)"):
        await agent.new_session(cwd=str(tmp_path))
    with pytest.raises(RequestError, match="unknown session"):
        await agent.set_session_mode(session_id="nope", mode_id="ask")
    with pytest.raises(RequestError, match="unknown session"):
        await agent.prompt(session_id="nope", prompt=[text_block("hi")])


def test_client_mcp_servers_become_server_tables() -> None:
    from acp import schema

    from k2lsp.acp.agent import client_servers

    problems: list[str] = []
    servers = client_servers(
        [
            schema.McpServerStdio(
                name="my docs!",
                command="docs-mcp",
                args=["--stdio"],
                env=[schema.EnvVariable(name="TOKEN", value="t0k3n-value")],
            ),
            schema.HttpMcpServer(
                type="http",
                name="tracker",
                url="https://mcp.example.com/mcp",
                headers=[schema.HttpHeader(name="Authorization", value="Bearer x")],
            ),
            schema.SseMcpServer(type="sse", name="old", url="https://x/sse", headers=[]),
        ],
        problems,
    )
    assert problems == ["MCP server 'old': the sse transport is not supported"]
    assert list(servers) == ["my_docs_", "tracker"]
    assert servers["my_docs_"].env == {"TOKEN": "t0k3n-value"}
    assert servers["tracker"].headers == {"Authorization": "Bearer x"}
    assert "t0k3n" not in repr(servers["my_docs_"])


def test_the_documented_configurations_parse_and_validate(tmp_path: Path) -> None:
    import json
    import re
    import tomllib

    from k2lsp.config.settings import load_settings

    text = (Path(__file__).resolve().parents[1] / "docs" / "acp.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", text, re.S)
    jsons = [json.loads(body) for lang, body in blocks if lang == "json"]
    assert len(jsons) == 2
    for cfg in jsons:
        (agent,) = cfg["agent_servers"].values()
        assert agent["args"] == ["acp"]
    lua = [body for lang, body in blocks if lang in ("lua", "elisp")]
    assert len(lua) == 3 and all('"acp"' in body for body in lua)
    (toml,) = [body for lang, body in blocks if lang == "toml"]
    tomllib.loads(toml)
    (tmp_path / "k2lsp.toml").write_text(toml)
    settings = load_settings(tmp_path, trusted=True)
    assert set(settings.mcp.servers) == {"docs", "tracker"}
    assert settings.mcp.servers["docs"].allow_tools == ["search_*"]
