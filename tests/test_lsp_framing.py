"""LSP framing under hostile input: every malformed frame is answered or skipped, the reader
resynchronises, and oversized bodies are skipped without being held — checked on the parser
and by writing raw bytes to a real `k2lsp --stdio` process."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k2lsp.server.framing import INVALID_REQUEST, PARSE_ERROR, FrameParser, Message, Problem

pytestmark = pytest.mark.timeout(120)


def frame(obj: Any, *, sep: bytes = b"\r\n") -> bytes:
    body = json.dumps(obj).encode()
    return b"Content-Length: " + str(len(body)).encode() + sep + sep + body


def req(msg_id: int, method: str = "x", **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}


BODY = json.dumps(req(1)).encode()
# (name, raw bytes, error codes the bad part must produce)
ATTACKS: list[tuple[str, bytes, list[int]]] = [
    ("bad_length", b"Content-Length: abc\r\n\r\n" + BODY, [PARSE_ERROR]),
    ("negative_length", b"Content-Length: -5\r\n\r\n" + BODY, [PARSE_ERROR]),
    ("missing_length", b"Content-Type: application/json\r\n\r\n" + BODY, [PARSE_ERROR]),
    (
        "duplicated_length",
        b"Content-Length: 10\r\nContent-Length: 20\r\n\r\n" + BODY,
        [PARSE_ERROR],
    ),
    ("length_too_short", b"Content-Length: 12\r\n\r\n" + BODY, [PARSE_ERROR]),
    ("length_too_long", b"Content-Length: 900\r\n\r\n" + BODY, [PARSE_ERROR]),
    ("not_json", b"Content-Length: 5\r\n\r\nhello", [PARSE_ERROR]),
    (
        "nesting_too_deep",
        b"Content-Length: 400000\r\n\r\n" + b"[" * 200_000 + b"]" * 200_000,
        [PARSE_ERROR],
    ),
    ("garbage_line", b"GET / HTTP/1.1 garbage\x00\xff\r\n", [PARSE_ERROR]),
    ("huge_length_lie", b"Content-Length: 1000000000000\r\n\r\n" + BODY, [INVALID_REQUEST]),
    (
        "huge_length_lie_long_body",
        b"Content-Length: 1000000000000\r\n\r\n" + json.dumps(req(1, text="a" * 9000)).encode(),
        [INVALID_REQUEST],
    ),
    ("not_an_object", frame([1, 2, 3]), [INVALID_REQUEST]),
]


@pytest.mark.parametrize("step", [1, 7, 4096], ids=["byte_by_byte", "chunks_of_7", "whole"])
@pytest.mark.parametrize(("name", "raw", "codes"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_parser_reports_the_bad_frame_and_reads_the_next_one(
    name: str, raw: bytes, codes: list[int], step: int
) -> None:
    parser = FrameParser(max_body=1 << 20)
    data = raw + frame(req(42, "ok"))
    out: list[Message | Problem] = []
    for i in range(0, len(data), step):
        out += parser.feed(data[i : i + step])
    problems = [p.code for p in out if isinstance(p, Problem)]
    messages = [m.obj for m in out if isinstance(m, Message)]
    assert all(p.msg_id in (None, 1) for p in out if isinstance(p, Problem))  # never the next
    if name == "not_an_object":  # framing is fine; the server answers -32600 for it
        assert problems == [] and messages[0] == [1, 2, 3]
        messages = messages[1:]
    else:
        assert problems == codes
    assert messages == [req(42, "ok")]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b'{"jsonrpc":"2.0","id":7,"method":"x","params":{"id":8}}', 7),
        (b'{"params":{"id":8},"id":"a"', "a"),
        (b'{"params":{"id":8}}Content-Length: 50\r\n\r\n{"id":9}', None),
        (b"{}" + b'Content-Length: 50\r\n\r\n{"jsonrpc":"2.0","id":42}', None),
        (b'[{"id":1}]', None),
        (b'{"id":true}', None),
    ],
)
def test_sniffed_id_is_the_top_level_id_of_the_first_object(
    prefix: bytes, expected: object
) -> None:
    from k2lsp.server.framing import sniff_id

    assert sniff_id(prefix) == expected


def test_a_too_long_length_resumes_at_the_first_following_header_of_any_spelling() -> None:
    lower = frame(req(5)).replace(b"Content-Length", b"content-length")
    data = b"Content-Length: 5000\r\n\r\n" + BODY + lower + frame(req(42))
    out: list[Message | Problem] = []
    parser = FrameParser()
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    assert [p.code for p in out if isinstance(p, Problem)] == [PARSE_ERROR]
    assert [m.obj["id"] for m in out if isinstance(m, Message)] == [5, 42]


def test_lf_only_headers_and_lowercase_names_are_accepted() -> None:
    parser = FrameParser()
    body = json.dumps(req(3)).encode()
    out = parser.feed(b"content-length: %d\n\n" % len(body) + body + frame(req(4), sep=b"\n"))
    assert [m.obj["id"] for m in out if isinstance(m, Message)] == [3, 4]


def test_oversized_body_is_skipped_without_being_held_and_names_the_request() -> None:
    parser = FrameParser(max_body=1000)
    big = json.dumps(req(11, "foo", text="a" * 50_000)).encode()
    out = parser.feed(b"Content-Length: %d\r\n\r\n" % len(big))
    for i in range(0, len(big), 1000):
        out += parser.feed(big[i : i + 1000])
        assert len(parser._buf) <= 1000  # never the whole body
    out += parser.feed(frame(req(12)))
    assert [(p.code, p.msg_id) for p in out if isinstance(p, Problem)] == [(INVALID_REQUEST, 11)]
    assert [m.obj["id"] for m in out if isinstance(m, Message)] == [12]


# --- a real server over stdio ----------------------------------------------------------------
class RawServer:
    """`k2lsp --stdio` with raw byte access and a thread that parses what it answers."""

    def __init__(self, home: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("K2LSP_")}
        env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / "c")})
        env["XDG_STATE_HOME"] = str(home / "s")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "k2lsp", "--stdio", "--max-message-mb", "1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        parser = FrameParser()
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(65536):
            for item in parser.feed(chunk):
                if isinstance(item, Message):
                    self.answers.put(item.obj)

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def until(self, msg_id: int) -> list[dict[str, Any]]:
        """Every response up to (and with) the one for `msg_id`."""
        got: list[dict[str, Any]] = []
        while True:
            msg = self.answers.get(timeout=60)
            if "method" in msg:
                continue  # server -> client notifications and requests
            got.append(msg)
            if msg.get("id") == msg_id:
                return got

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawServer]:
    root = tmp_path_factory.mktemp("framing")
    srv = RawServer(root)
    srv.send(frame(req(0, "initialize", processId=None, rootUri=root.as_uri(), capabilities={})))
    assert "result" in srv.until(0)[-1]
    srv.send(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    yield srv
    srv.close()


def status(msg_id: int) -> bytes:
    return frame(req(msg_id, "workspace/executeCommand", command="k2lsp.status", arguments=[{}]))


@pytest.mark.parametrize(("name", "raw", "codes"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_server_answers_a_malformed_frame_and_keeps_serving(
    server: RawServer, name: str, raw: bytes, codes: list[int]
) -> None:
    msg_id = 1000 + [a[0] for a in ATTACKS].index(name)
    server.send(raw + status(msg_id))
    got = server.until(msg_id)
    errors = [m["error"]["code"] for m in got if "error" in m]
    assert errors == codes
    assert all(m["id"] is None for m in got if "error" in m and not name.startswith("huge"))
    assert "runs" in got[-1]["result"]


def test_server_survives_an_oversized_message_and_answers_its_id(server: RawServer) -> None:
    big = json.dumps(req(77, "workspace/executeCommand", command="x", text="b" * (3 << 20)))
    server.send(b"Content-Length: %d\r\n\r\n" % len(big) + big.encode() + status(78))
    got = server.until(78)
    assert [(m["id"], m["error"]["code"]) for m in got if "error" in m] == [(77, INVALID_REQUEST)]
    assert "1 MB" in got[0]["error"]["message"]
    assert "runs" in got[-1]["result"]


def test_lf_only_request_is_served(server: RawServer) -> None:
    server.send(status(90).replace(b"\r\n", b"\n"))
    assert "runs" in server.until(90)[-1]["result"]


def test_tcp_server_uses_the_same_reader(tmp_path: Path) -> None:
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2LSP_")}
    env.update({"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "c")})
    proc = subprocess.Popen(
        [sys.executable, "-m", "k2lsp", "--tcp", "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "no TCP server"
                time.sleep(0.1)
        init = req(1, "initialize", processId=None, rootUri=None, capabilities={})
        conn.sendall(b"Content-Length: 1000000000000\r\n\r\n{}" + frame(init))
        parser, got = FrameParser(), []
        while len(got) < 2:
            chunk = conn.recv(65536)
            assert chunk, "the server closed the connection"
            got += [m.obj for m in parser.feed(chunk) if isinstance(m, Message)]
        conn.close()
    finally:
        proc.kill()
        proc.wait(10)
    assert got[0]["id"] is None and got[0]["error"]["code"] == INVALID_REQUEST
    assert got[1]["id"] == 1 and "capabilities" in got[1]["result"]
