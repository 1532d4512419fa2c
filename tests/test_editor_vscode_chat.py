"""The VS Code chat (editors/vscode/src/chat*.ts): unit tests of its vscode-free core in Node,
and code-server in Chromium sending a question and a follow-up from the K2 Chat panel.

code-server has the chat participant API (the extension registers "@k2"), but its chat view
asks to sign in to Copilot before it sends anything (no chat model here), so "K2: Open chat"
opens the webview panel: that is what runs for real. Needs `bash editors/setup-test-deps.sh`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k2lsp.fake.server import FakeK2Server, Reply
from tests.editor_helpers import make_calc_project
from tests.test_editor_vscode import (
    API_KEY,
    MODEL,
    _server_bin,
    _server_env,
    install_code_server,
    run_code_server,
    run_e2e,
    run_node_tests,
)

pytestmark = pytest.mark.editor
FIX = ("edit_file", {"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"})


def chat_script() -> list[Reply]:
    return [
        Reply(reasoning="The buffer shows add.\nIt subtracts.", content="add subtracts b from a."),
        Reply(reasoning="Fix it now.", tool_calls=[FIX]),
        Reply(reasoning="Done.", content="Fixed: add adds now."),
    ]


def test_chat_core_unit_tests() -> None:
    proc, report = run_node_tests("chat.test.mjs")
    assert proc.returncode == 0, report
    assert "ℹ pass 5" in proc.stdout and "ℹ fail 0" in proc.stdout, report


@pytest.fixture
def chat_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """code-server with the freshly built .vsix and the fake K2 host scripted for the chat."""
    settings = {
        "k2lsp.serverPath": _server_bin(),
        "k2lsp.sandbox": "none",
        "k2lsp.maxSteps": 20,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoCheckUpdates": False,
        "extensions.ignoreRecommendations": True,
        "files.autoSave": "off",
    }
    base, data, chromium = install_code_server(tmp_path, settings)
    project = make_calc_project(tmp_path)
    with FakeK2Server(chat_script(), models=[MODEL]) as srv:
        env = _server_env(project, srv.base_url)
        env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
        with run_code_server(base, project, env, tmp_path) as url:
            yield {
                "url": url,
                "root": project,
                "shots": str(tmp_path),
                "chromium": chromium,
                "log": tmp_path / "code-server.log",
                "data": data,
                "fake": srv,
            }


def test_code_server_chat_panel_sends_a_message_and_a_follow_up(
    chat_server: dict[str, Any],
) -> None:
    result, report = run_e2e("chat.mjs", chat_server)
    fake: FakeK2Server = chat_server["fake"]
    assert fake.rejected == [] and len(fake.requests) == 3, report
    # the question carried the unsaved buffer (the "current file" chip) with its version
    first_user = fake.requests[0]["messages"][-1]["content"]
    assert "what does add do?" in first_user and "# typed in the editor" in first_user
    assert "Current buffer calc.py (editor buffer, version" in first_user
    # the follow-up continued the conversation: the earlier turn is in its request
    body = fake.requests[1]["messages"]
    assert body[1]["content"] == first_user
    answer = next(m for m in body if m["role"] == "assistant")
    assert answer["reasoning_content"] == "The buffer shows add.\nIt subtracts."
    assert "now fix it" in body[-1]["content"] and "Follow-up request" in body[-1]["content"]
    assert result["conversation_1"] and result["conversation_1"] == result["conversation_2"]
    text = result["transcript"]
    assert "add subtracts b from a." in text and "Fixed: add adds now." in text
    assert "edit_file" in text and "calc.py" in text
    assert result["details"] >= 3 and result["open_details"] == 0  # reasoning + diff folded
    assert "+    return a + b" in result["html"]  # the diff, inside its folded <details>
    assert all(e.startswith("success · ") for e in result["ends"]), result["ends"]
    assert result["calc"] == "# typed in the editor\ndef add(a, b):\n    return a + b\n"
    assert API_KEY not in text
    # which chat this host offers (recorded by the extension in the "K2" Output channel)
    logs = [p.read_text() for p in Path(chat_server["data"]).rglob("*K2.log")]
    line = next(ln for log in logs for ln in log.splitlines() if "chat: " in ln)
    print(f"code-server: {line}")  # the panel ran above: code-server's own chat view is off
