"""The scripted K2 of the refactor-job tests: a policy of the fake server that reads each
request (planning or a batch, and how far that conversation got) and answers with the tool
calls a model doing the job would make. It never sees the expected result."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench import refactor_corpus
from k2lsp.fake.script import Reply


def typescript_or_skip() -> tuple[Path, Path]:
    """immer's source folder and typescript-language-server (fetched once from npm, as CI
    does); the test is skipped where node/npm or the registry are not there."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node/npm are not installed")
    try:
        return refactor_corpus.fetch()
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot fetch immer / typescript-language-server: {exc}")


@dataclass(frozen=True)
class RenameJob:
    """Rename `old` (defined in `path`) to `new` and give every call the argument `extra`;
    `def_old`/`def_new` is the definition's signature change."""

    path: str
    old: str
    new: str
    extra: str = ""
    def_old: str = ""
    def_new: str = ""
    verify: str = ""
    batch_files: int = 3
    language: str = "python"

    @property
    def task(self) -> str:
        """The request in words."""
        if not self.extra:
            return f"Rename {self.old} to {self.new} everywhere."
        return (
            f"Rename {self.old} to {self.new} everywhere and pass {self.extra} explicitly at "
            f"every call site; its signature becomes `{self.def_new.strip()}`."
        )

    def policy(self, body: dict[str, Any]) -> Reply:
        """The next reply for one request."""
        msgs = body.get("messages") or []
        first_user = next((m.get("content") or "" for m in msgs if m.get("role") == "user"), "")
        step = sum(1 for m in msgs if m.get("role") == "assistant")
        if "BATCH_FILES:" in first_user:
            files = json.loads(re.search(r"BATCH_FILES: (\[.*\])", first_user).group(1))  # type: ignore[union-attr]
            return self._batch(step, files)
        return self._plan(step)

    def _plan(self, step: int) -> Reply:
        if step == 0:
            return Reply(
                reasoning="find every site",
                tool_calls=[("references", {"path": self.path, "symbol": self.old})],
            )
        if step == 1:
            plan = {
                "summary": self.task,
                "searches": [{"path": self.path, "symbol": self.old}],
                "checks": [f"{self.old}($$$A)"],
                "verify": self.verify,
                "batch_files": self.batch_files,
            }
            return Reply(reasoning="record the plan", tool_calls=[("record_plan", plan)])
        return Reply(reasoning="planned", content="Plan recorded.")

    def _batch(self, step: int, files: list[str]) -> Reply:
        rename = {"path": self.path, "symbol": self.old, "new_name": self.new, "paths": files}
        calls: list[tuple[str, dict[str, Any]]] = [("rename_symbol", rename)]
        if self.extra:
            calls.append(("rewrite", self._rewrite(files, apply=False)))
            calls.append(("rewrite", self._rewrite(files, apply=True)))
        if self.path in files and self.def_old:
            edit = {"path": self.path, "old_text": self.def_old, "new_text": self.def_new}
            calls.append(("edit_file", edit))
        calls.append(("diagnostics", {"paths": files}))
        if step < len(calls):
            return Reply(reasoning=f"batch step {step}", tool_calls=[calls[step]])
        return Reply(reasoning="done", content=f"Renamed and updated calls in {len(files)} files.")

    def _rewrite(self, files: list[str], *, apply: bool) -> dict[str, Any]:
        return {
            "pattern": f"{self.new}($$$A)",
            "replacement": f"{self.new}($$$A, {self.extra})",
            "paths": files,
            "language": self.language,
            "apply": apply,
        }
