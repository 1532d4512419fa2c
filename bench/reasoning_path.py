"""Per-delta cost of the reasoning path: SSE bytes from the model host -> `k2lsp/stream`
notification (plus the window/logMessage lines, progress and transcript) in the real server.

The real `k2lsp --stdio` server runs as a subprocess, driven by a minimal LSP client over
stdio with `streamNotifications` on (transcript and reasoning log at their defaults). One
`k2lsp.ask` is answered by the fake K2 host (real HTTP, real openai SDK) with a reply whose
reasoning streams in `--deltas` SSE chunks. The server's CPU time (user + system, from
/proc) is read before and after the run; the per-delta cost is the CPU of a long run minus a
short run (same setup, `--short` deltas) divided by the difference in deltas, so start-up and
the per-run work cancel out.

"before" is another revision's code (default: `main`), exported with `git archive` into a
temporary directory; "after" is this checkout. Both run in the same invocation, alternated
(before, after, before, after, ...), against the same fake host; min/median/max per side.

    .venv/bin/python bench/reasoning_path.py [--before main] [--rounds 5] [--deltas 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from revtree import export  # noqa: E402

from k2lsp.fake.server import FakeK2Server, Reply  # noqa: E402

MODEL = "kimi-k2-thinking"
API_KEY = "sk-bench-reasoning-0123456789abcdef"
WORDS = "the parser keeps a stack of open nodes and closes them on dedent so "


class Client:
    """Just enough LSP over stdio: requests, notifications, and a reader thread."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._id = 0
        self.responses: dict[int, Any] = {}
        self.finished = threading.Event()
        self.notifications = 0
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        body = json.dumps(obj).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params: Any, timeout: float = 120) -> Any:
        self._id += 1
        rid = self._id
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        with self._cond:
            if not self._cond.wait_for(lambda: rid in self.responses, timeout):
                raise TimeoutError(f"no answer to {method}")
            return self.responses.pop(rid)

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = 0
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            msg = json.loads(out.read(length))
            if "id" in msg and "method" in msg:  # a server request: accept it
                self._send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
            elif "id" in msg:
                with self._cond:
                    self.responses[msg["id"]] = msg.get("result", msg.get("error"))
                    self._cond.notify_all()
            elif msg.get("method") == "k2lsp/stream":
                self.notifications += 1
                if any(e["type"] == "run_finished" for e in msg["params"]["events"]):
                    self.finished.set()


def _cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(code: Path, srv: FakeK2Server, deltas: int, work: Path) -> float:
    """CPU seconds the server (code from `code`) spends on one ask streaming `deltas` chunks."""
    chunk = 6
    text = (WORDS * (deltas * chunk // len(WORDS) + 1))[: deltas * chunk]
    srv.add(Reply(reasoning=text, content="Done.", chunk_size=chunk))
    root = work / "proj"
    root.mkdir(parents=True, exist_ok=True)
    (root / "a.py").write_text("x = 1\n")
    if not (root / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2LSP_")}
    env.update(
        PYTHONPATH=str(code),
        K2LSP_BASE_URL=srv.base_url,
        K2LSP_API_KEY=API_KEY,
        K2LSP_MODEL=MODEL,
        K2LSP_PROVIDER="openai-compatible",
        K2LSP_SANDBOX="none",
        HOME=str(work),
        XDG_STATE_HOME=str(work / "state"),
        XDG_CONFIG_HOME=str(work / "config"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "k2lsp", "--stdio"],
        cwd=code,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    client = Client(proc)
    try:
        caps = {"window": {"workDoneProgress": True}, "experimental": {"k2lsp": {"stream": True}}}
        client.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "capabilities": caps,
                "workspaceFolders": [{"uri": root.as_uri(), "name": "proj"}],
                "initializationOptions": {"k2lsp": {"streamNotifications": True}},
            },
        )
        client.notify("initialized", {})
        time.sleep(0.2)  # let the server settle (config, trust) before the clock starts
        cpu0 = _cpu(proc.pid)
        client.request(
            "workspace/executeCommand",
            {"command": "k2lsp.ask", "arguments": [{"question": "What does a.py do?"}]},
        )
        if not client.finished.wait(300):
            raise TimeoutError("the run did not finish")
        time.sleep(0.1)  # the last batch's log lines and transcript
        cpu = _cpu(proc.pid) - cpu0
        client.request("shutdown", None)
        client.notify("exit", None)
        proc.wait(30)
        return cpu
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main() -> None:
    """Parse flags, run alternated rounds, print per-delta figures."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--before", default="main", help="revision to compare against (git archive)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--deltas", type=int, default=4000)
    p.add_argument("--short", type=int, default=200)
    args = p.parse_args()
    results: dict[str, list[float]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp, FakeK2Server([], models=[MODEL]) as srv:
        sides = {"before": export(args.before, Path(tmp)), "after": ROOT}
        for r in range(args.rounds):
            for side, code in sides.items():
                work = Path(tmp) / f"{side}-{r}"
                long = one_run(code, srv, args.deltas, work / "long")
                short = one_run(code, srv, args.short, work / "short")
                per = (long - short) / (args.deltas - args.short) * 1e6
                results[side].append(per)
                print(f"round {r + 1} {side:6}: {per:7.1f} µs CPU per delta", flush=True)
    print(f"\nper-delta server CPU, SSE chunk -> k2lsp/stream ({args.deltas} deltas, 6 chars each)")
    for side, values in results.items():
        print(
            f"  {side:6} ({args.before if side == 'before' else 'this checkout'}): "
            f"min {min(values):.1f} · median {statistics.median(values):.1f} · "
            f"max {max(values):.1f} µs"
        )
    ratio = statistics.median(results["after"]) / statistics.median(results["before"])
    print(f"  after/before (median): {ratio:.2f}")


if __name__ == "__main__":
    main()
