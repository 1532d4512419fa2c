"""`k2lsp demo` end to end: the recorded session replayed through the real agent, tools,
sandbox (auto, or none with a warning) and git delivery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from k2lsp.demo.demo import SESSION


def test_demo_replays_the_fix_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2LSP_")}
    proc = subprocess.run(
        [sys.executable, "-m", "k2lsp", "demo", "--fast", "--dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REPLAY" in proc.stderr
    for name in ("list_files", "read_file", "run_tests", "edit_file"):
        assert f"→ {name}" in proc.stdout
    assert "1 failed" in proc.stdout and "4 passed, 0 failed" in proc.stdout
    assert "+    return len(text.split())" in proc.stderr
    repo = tmp_path / "textstats"
    assert "return len(text.split())" in (repo / "textstats" / "stats.py").read_text()
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    assert status.strip() == "M textstats/stats.py"
    assert "Traceback" not in proc.stderr


def test_demo_script_uses_only_contract_tools() -> None:
    script = json.loads(SESSION.read_text())
    names = [call[0] for item in script for call in item.get("tool_calls", [])]
    assert names == ["list_files", "read_file", "run_tests", "edit_file", "run_tests"]
    assert "content" in script[-1] and not script[-1].get("tool_calls")
