"""The refactor job on a real package (bottle 0.12.25 from PyPI, from the CI corpus cache): a
scripted K2 renames `tob` (79 references in 11 files) to `to_bytes` and makes its encoding
explicit at every call site, in batches, through jedi-language-server, ast-grep and the gate.

Checked against what the language server itself does on the same tree (its own rename plus the
same call-site rewrite): the same files, the same text, the same `to_bytes` sites — 0 missed,
0 extra; the project's own unittest suite has no new failure; a `kill -9` in the middle of a
batch and `--resume` give the same result; with no language server the job runs by tree-sitter
name matching and says so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import make_k2_env
from refactor_helpers import RenameJob

from bench.corpus import BY_NAME, available, user_project
from k2lsp.fake.server import FakeK2Server
from k2lsp.lspc.fallback import file_sites
from k2lsp.lspc.pool import workspace_edit_files
from k2lsp.lspc.servers import find_server
from k2lsp.lspc.session import ServerSession
from k2lsp.lspc.text import apply_edits
from k2lsp.tools.rewrite import file_edits

BOTTLE = RenameJob(
    path="bottle.py",
    old="tob",
    new="to_bytes",
    extra="enc='utf8'",
    def_old="def to_bytes(s, enc='utf8'):",
    def_new="def to_bytes(s, *, enc='utf8'):",
)
pytestmark = pytest.mark.skipif(
    find_server("python") is None, reason="jedi-language-server is not installed"
)


@pytest.fixture(scope="module")
def bottle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pkg = BY_NAME["bottle"]
    if not available(pkg):
        pytest.skip(f"corpus package {pkg.key} missing: run `python bench/corpus.py`")
    return user_project(pkg, tmp_path_factory.mktemp("pristine") / pkg.key)


def tracked(repo: Path) -> dict[str, str]:
    """rel -> text of the .py files git tracks in `repo`."""
    names = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "*.py"], capture_output=True, text=True, check=True
    ).stdout.split()
    return {n: (repo / n).read_text(encoding="utf-8") for n in names}


def server_result(project: Path, job: RenameJob) -> dict[str, str]:
    """The language server's own rename of the whole tree, then the same call-site rewrite
    and signature change on every file: what the job must produce."""
    spec = find_server("python")
    assert spec is not None
    work = project.parent / "server-rename"
    shutil.copytree(project, work, symlinks=True)
    texts = tracked(work)
    line = next(i for i, t in enumerate(texts[job.path].split("\n"), 1) if f"def {job.old}(" in t)
    col = texts[job.path].split("\n")[line - 1].index(job.old) + 1
    session = ServerSession(spec, work).start()
    try:
        edit = session.rename(job.path, line, col, job.new)
    finally:
        session.close()
    per_file, skipped = workspace_edit_files(edit, work, lambda rel: texts[rel])
    assert not skipped
    out = dict(texts)
    for rel, edits in per_file.items():
        out[rel] = apply_edits(texts[rel], edits)
        pattern, replacement = f"{job.new}($$$A)", f"{job.new}($$$A, {job.extra})"
        calls = file_edits(rel, out[rel], "python", pattern, replacement)
        out[rel] = apply_edits(out[rel], calls)
    out[job.path] = out[job.path].replace(job.def_old, job.def_new, 1)
    return out


def branch_files(repo: Path, branch: str, rels: list[str]) -> dict[str, str]:
    """The texts of `rels` on `branch` of `repo`."""
    out = {}
    for rel in rels:
        show = subprocess.run(
            ["git", "-C", str(repo), "show", f"{branch}:{rel}"], capture_output=True, text=True
        )
        out[rel] = show.stdout
    return out


def refactor_cmd(folder: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "k2lsp", "refactor", *args, "--repo", str(folder), "--json"]


def job_env(srv: FakeK2Server, state: Path, **extra: str) -> dict[str, str]:
    env = make_k2_env(srv.base_url)
    env.update(XDG_STATE_HOME=str(state), XDG_CONFIG_HOME=str(state / "cfg"), **extra)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    env.pop("K2LSP_SANDBOX", None)
    return env


def events_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def unittest_failures(folder: Path) -> set[str]:
    """The ids of the failing tests of bottle's own unittest suite in `folder`."""
    proc = subprocess.run(
        [str(folder / ".venv" / "bin" / "python"), "-m", "unittest", "discover", "-s", "test"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Ran " in proc.stderr, proc.stderr[-2000:]
    return {
        line.split(":", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith(("FAIL:", "ERROR:"))
    }


def checkout(repo: Path, branch: str, dest: Path) -> Path:
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", str(dest), branch], check=True)
    (dest / ".venv").symlink_to((repo / ".venv").resolve())
    return dest


def sites(texts: dict[str, str], name: str) -> set[tuple[str, int, int]]:
    return {s.key() for rel, t in texts.items() for s in file_sites(rel, t, name)}


def test_job_killed_mid_batch_resumes_to_the_language_servers_rename(
    bottle: Path, tmp_path: Path
) -> None:
    expected = server_result(bottle, BOTTLE)
    folder = tmp_path / "bottle"
    shutil.copytree(bottle, folder, symlinks=True)
    state = tmp_path / "state"
    srv = FakeK2Server()
    srv.responder = BOTTLE.policy
    srv.start()
    try:
        env = job_env(srv, state)
        proc = subprocess.Popen(
            refactor_cmd(folder, BOTTLE.task), env=env, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        seen: list[dict[str, Any]] = []
        in_batch_3 = False
        for line in proc.stdout:
            event = json.loads(line)
            seen.append(event)
            if event["type"] == "job_progress" and event["phase"] == "batch":
                in_batch_3 = event["batch"] == 3 and event["message"].startswith("files:")
            if in_batch_3 and event["type"] == "tool_result" and event["name"] == "rewrite":
                os.kill(proc.pid, signal.SIGKILL)  # mid-batch: renamed, calls half done
                break
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        job_id = seen[0]["run_id"]
        job = json.loads((state / "k2lsp" / "jobs" / job_id / "job.json").read_text())
        assert job["status"] == "running"
        assert [b["status"] for b in job["batches"]] == ["done", "done", "pending", "pending"]
        assert "jedi-language-server" in job["plan"]["found_by"][0]

        resumed = subprocess.run(
            refactor_cmd(folder, "--resume", job_id), env=env, capture_output=True, text=True,
            timeout=900,
        )  # fmt: skip
    finally:
        srv.stop()
    events = events_of(resumed.stdout)
    done = [e for e in events if e["type"] == "job_progress" and e["phase"] == "done"]
    assert done, resumed.stderr[-3000:]
    assert done[-1]["sites_left"] == 0 and done[-1]["files_done"] == done[-1]["files_total"] == 11
    batches_run = {
        e["batch"] for e in events if e["type"] == "job_progress" and e["phase"] == "tests"
    }
    assert batches_run == {3, 4}  # the finished batches were not redone

    branch = f"k2lsp/{job_id}"
    log = subprocess.run(
        ["git", "-C", str(folder), "log", "--format=%s", f"main..{branch}"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    assert [s for s in log if s] == [
        f"k2lsp refactor {job_id}: batch {k} of 4" for k in (4, 3, 2, 1)
    ]
    got = branch_files(folder, branch, list(expected))
    changed = {rel for rel in expected if expected[rel] != tracked(bottle)[rel]}
    assert changed == {rel for rel in got if got[rel] != tracked(bottle)[rel]}
    assert sites(got, "to_bytes") == sites(expected, "to_bytes")  # 0 missed, 0 extra
    assert got == expected
    assert sites(got, "tob") == set()
    assert tracked(folder) == tracked(bottle)  # the user's files are untouched

    before = unittest_failures(bottle)
    after = unittest_failures(checkout(folder, branch, tmp_path / "result"))
    assert after <= before, f"new failures: {sorted(after - before)}"


def test_job_without_a_language_server_falls_back_to_tree_sitter(
    bottle: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "bottle"
    shutil.copytree(bottle, folder, symlinks=True)
    state = tmp_path / "state"
    with FakeK2Server() as srv:
        srv.responder = BOTTLE.policy
        proc = subprocess.run(
            refactor_cmd(folder, BOTTLE.task),
            env=job_env(srv, state, K2LSP_LSP_ENABLED="false"),
            capture_output=True,
            text=True,
            timeout=900,
        )
    events = events_of(proc.stdout)
    results = [e for e in events if e["type"] == "tool_result"]
    assert results and all(
        "FALLBACK tree-sitter" in e["text"]
        for e in results
        if e["name"] in ("references", "rename_symbol")
    )
    planned = next(e for e in events if e["type"] == "job_progress" and e["phase"] == "planned")
    assert "FALLBACK tree-sitter name matching" in planned["message"]
    done = [e for e in events if e["type"] == "job_progress" and e["phase"] == "done"]
    assert done and done[-1]["sites_left"] == 0, proc.stderr[-3000:]
    job_id = events[0]["run_id"]
    got = branch_files(folder, f"k2lsp/{job_id}", list(tracked(bottle)))
    assert sites(got, "tob") == set()
    before = unittest_failures(bottle)
    after = unittest_failures(checkout(folder, f"k2lsp/{job_id}", tmp_path / "result"))
    assert after <= before, f"new failures: {sorted(after - before)}"
