"""The refactor job on a real TypeScript package (immer 10.1.1 from the npm registry, its
`src/*.ts`) with typescript-language-server: a scripted K2 renames `die` (30 references in 9
files, imported through a barrel module) to `fail` in batches. The result equals the server's
own rename of the same tree, and the TypeScript compiler reports nothing new."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY
from refactor_helpers import RenameJob, typescript_or_skip

from bench import refactor_corpus
from k2lsp.agent.events import Event
from k2lsp.agent.refactor.job import JobOptions
from k2lsp.agent.refactor.runner import run_job
from k2lsp.config.settings import load_settings
from k2lsp.errors import Outcome
from k2lsp.fake.script import Reply
from k2lsp.lspc.fallback import file_sites
from k2lsp.lspc.pool import workspace_edit_files
from k2lsp.lspc.servers import ServerSpec
from k2lsp.lspc.session import ServerSession
from k2lsp.lspc.text import apply_edits

JOB = RenameJob(path="src/utils/errors.ts", old="die", new="fail", language="typescript")


@pytest.fixture(scope="module")
def immer() -> Path:
    return typescript_or_skip()[0]


def ts_files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted((root / "src").rglob("*.ts"))
    }


def tsc(root: Path) -> list[str]:
    proc = subprocess.run(
        [str(refactor_corpus.tsc_bin()), "-p", "."], cwd=root, capture_output=True, text=True
    )
    return sorted(line for line in proc.stdout.splitlines() if "error TS" in line)


def test_typescript_rename_job_equals_the_servers_rename(
    immer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pristine = refactor_corpus.typescript_project(tmp_path / "pristine")
    before = ts_files(pristine)
    spec = ServerSpec("typescript", (str(refactor_corpus.tsls_bin()), "--stdio"))
    lines = before[JOB.path].split("\n")
    line = next(i for i, t in enumerate(lines, 1) if "function die(" in t)
    session = ServerSession(spec, pristine).start()
    try:
        assert len(session.references(JOB.path, line, lines[line - 1].index("die") + 1)) == 30
        edit = session.rename(JOB.path, line, lines[line - 1].index("die") + 1, JOB.new)
    finally:
        session.close()
    per_file, skipped = workspace_edit_files(edit, pristine, lambda rel: before[rel])
    assert not skipped and len(per_file) == 9
    expected = {rel: apply_edits(text, per_file.get(rel, [])) for rel, text in before.items()}

    repo = refactor_corpus.typescript_project(tmp_path / "repo")
    srv_env = {"K2LSP_API_KEY": TEST_KEY, "K2LSP_MODEL": "kimi-k2-thinking"}
    srv_env |= {"K2LSP_PROVIDER": "openai-compatible", "K2LSP_SANDBOX": "none"}
    srv_env |= {"XDG_STATE_HOME": str(tmp_path / "state")}
    srv_env["PATH"] = f"{refactor_corpus.tsls_bin().parent}{os.pathsep}{os.environ['PATH']}"
    from k2lsp.fake.server import FakeK2Server

    with FakeK2Server() as srv:
        srv.responder = JOB.policy
        for key, value in {**srv_env, "K2LSP_BASE_URL": srv.base_url}.items():
            monkeypatch.setenv(key, value)
        events: list[Event] = []
        result = asyncio.run(
            run_job(JobOptions(task=JOB.task, repo=repo), load_settings(repo), [events.append])
        )
    assert result.outcome is Outcome.SUCCESS, result.summary
    planned = next(
        e.data for e in events if e.type == "job_progress" and e.data["phase"] == "planned"
    )
    assert planned["sites_total"] == 30 and planned["batches"] == 3
    assert "typescript-language-server" in planned["message"]
    assert result.left == []
    got = {
        rel: subprocess.run(
            ["git", "-C", str(repo), "show", f"{result.branch}:{rel}"],
            capture_output=True, text=True, check=True,
        ).stdout
        for rel in before
    }  # fmt: skip
    sites = lambda texts, name: {s.key() for r, t in texts.items() for s in file_sites(r, t, name)}  # noqa: E731
    assert sites(got, "fail") == sites(expected, "fail")  # 0 missed, 0 extra
    assert got == expected
    checkout = tmp_path / "result"
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "-q", str(checkout), result.branch], check=True
    )
    assert tsc(checkout) == tsc(pristine)  # the compiler sees nothing new


def fix_policy(body: dict[str, Any]) -> Reply:
    """A K2 that breaks a type in its batch, then fixes it when the job shows the error."""
    msgs = body.get("messages") or []
    users = [m.get("content") or "" for m in msgs if m.get("role") == "user"]
    step = sum(1 for m in msgs if m.get("role") == "assistant")
    if "Plan it" in users[0]:
        plan = {"summary": "pass h as a string", "searches": [{"path": "a.ts", "symbol": "area"}]}
        calls = [("references", {"path": "a.ts", "symbol": "area"}), ("record_plan", plan)]
        return (
            Reply(reasoning="plan", tool_calls=[calls[step]]) if step < 2 else Reply(content="ok")
        )
    if "NEW error" in users[-1]:
        fix = {"path": "b.ts", "old_text": 'area(1, "2")', "new_text": "area(1, 2)"}
        done = any(
            m.get("role") == "tool" and "Edited b.ts" in (m.get("content") or "") for m in msgs[-2:]
        )
        return Reply(content="fixed the type") if done else Reply(tool_calls=[("edit_file", fix)])
    if "b.ts" in users[0] and step == 0:
        bad = {"path": "b.ts", "old_text": "area(1, 2)", "new_text": 'area(1, "2")'}
        return Reply(reasoning="edit", tool_calls=[("edit_file", bad)])
    return Reply(content="batch done")


def test_a_type_error_a_batch_introduced_is_shown_to_the_model_and_fixed(
    immer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "small"
    repo.mkdir()
    (repo / "tsconfig.json").write_text(refactor_corpus.TSCONFIG.replace('["src"]', '["*.ts"]'))
    (repo / "a.ts").write_text(
        "export function area(w: number, h: number): number {\n  return w * h;\n}\n"
    )
    (repo / "b.ts").write_text(
        'import { area } from "./a";\n\nexport const X: number = area(1, 2);\n'
    )
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=u", "-c", "user.email=u@x", *args], check=True
        )
    from k2lsp.fake.server import FakeK2Server

    with FakeK2Server() as srv:
        srv.responder = fix_policy
        env = {
            "K2LSP_API_KEY": TEST_KEY,
            "K2LSP_MODEL": "kimi-k2-thinking",
            "K2LSP_SANDBOX": "none",
        }
        env |= {"K2LSP_PROVIDER": "openai-compatible", "K2LSP_BASE_URL": srv.base_url}
        env |= {"XDG_STATE_HOME": str(tmp_path / "state")}
        env["PATH"] = f"{refactor_corpus.tsls_bin().parent}{os.pathsep}{os.environ['PATH']}"
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        result = asyncio.run(
            run_job(JobOptions(task="pass h as a string", repo=repo), load_settings(repo))
        )
        shown = [
            m["content"] for r in srv.requests for m in r["messages"]
            if m.get("role") == "user" and "NEW error" in (m.get("content") or "")
        ]  # fmt: skip
    assert result.outcome is Outcome.SUCCESS, result.summary
    assert shown and "b.ts:3: NEW error" in shown[0] and "string" in shown[0], shown
    final = subprocess.run(["git", "-C", str(repo), "show", f"{result.branch}:b.ts"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "area(1, 2)" in final
