"""`k2lsp acp` on a real package (a corpus sdist as the user's git repository, with its
environment): the panel's unsaved buffer is what the run starts from, the tests run red then
green in the bubblewrap sandbox, and the fix lands through the client's fs merged with the
unsaved edit."""

from __future__ import annotations

from pathlib import Path

import pytest
from acp import resource_link_block, spawn_agent_process, text_block

from k2lsp.fake.server import FakeK2Server
from k2lsp.sandbox import bwrap as sandbox_bwrap
from tests.acp_helpers import AGENT_CMD, EditorClient, agent_env, client_caps
from tests.test_repos_e2e import SEEDS, script, seeded_project, tool_texts

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.bwrap,
    pytest.mark.skipif(
        sandbox_bwrap.problem() is not None, reason=f"bwrap unavailable: {sandbox_bwrap.problem()}"
    ),
]
NAME = "inflection"
NOTE = "# an unsaved note in the editor\n"


async def test_a_real_package_is_fixed_red_to_green_into_the_unsaved_buffer(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    folder, _dirty = seeded_project(NAME, tmp_path)
    rel, good, bad = SEEDS[NAME]
    path = folder / rel
    on_disk = path.read_text()
    editor = EditorClient(buffers={str(path): NOTE + on_disk})
    fake.add(*script(NAME))
    env = agent_env(fake.base_url, tmp_path / "home")
    env["K2LSP_SANDBOX"] = "bwrap"
    async with spawn_agent_process(editor, *AGENT_CMD, env=env, cwd=folder) as (conn, _proc):
        await conn.initialize(protocol_version=1, client_capabilities=client_caps())
        sid = (await conn.new_session(cwd=str(folder), mcp_servers=[])).session_id
        prompt = [
            text_block("The tests fail; fix the bug in"),
            resource_link_block(rel, path.as_uri()),
        ]
        answer = await conn.prompt(session_id=sid, prompt=prompt)
        assert answer.stop_reason == "end_turn"
    red, green = tool_texts(fake)
    assert "failed" in red.lower() and "failed" not in green.lower().replace("0 failed", "")
    calls = editor.of("tool_call")
    assert [u.kind for u in calls] == ["execute", "edit", "execute", "edit"]
    assert calls[-1].title.startswith("apply the changes")  # the delivery, shown with its diff
    assert editor.writes == [(str(path), NOTE + on_disk.replace(bad, good))]
    assert path.read_text() == on_disk  # the disk is the editor's business
