"""LSP base-protocol framing that survives a hostile or broken client.

pygls' reader trusts every header: one bad `Content-Length` leaves it deaf for good, and
`Content-Length: 10**12` makes it allocate the whole body (MemoryError). `FrameParser` is fed
raw bytes and yields parsed JSON messages or `Problem`s, and never stops listening:

- headers end with CRLF or a bare LF; names are case-insensitive; unknown headers are ignored;
- a missing, non-numeric or contradictory (duplicated with another value) `Content-Length`, a
  header line that is not a header, or a body that is not JSON is a `Problem` (answered with a
  JSON-RPC -32700 parse error, id null) and the parser resynchronises on the next
  `Content-Length:` it sees;
- a body that holds a whole `Content-Length: N` line (with a raw line break, which valid JSON
  cannot contain) was framed with a length that is too long: it is reported and the next
  message is read from that header at once, even while the wrong length still waits for bytes
  (also inside an oversized body being skipped);
- a body above `max_body` bytes is skipped as it arrives (never held in memory) and answered
  with -32600 carrying the request's id when the start of the body names one.

`run_framed` is the server's read loop over any `read() -> bytes` source (stdio or TCP).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
MAX_HEADER_LINE = 8192
MAX_HEADERS = 32
SNIFF_BYTES = 4096  # how much of a skipped body is kept to find its id
CARRY = 64  # bytes kept between chunks so a header split over two reads is still seen
_CL = re.compile(rb"content-length:", re.IGNORECASE)
# A whole `Content-Length: N` line with a raw line break cannot occur inside a valid JSON body
# (raw control characters are not allowed in JSON strings, and those letters are not allowed
# outside them): finding one inside a body proves the declared length was too long.
_HEADER_LINE = re.compile(rb"[Cc]ontent-[Ll]ength:[ \t]*[0-9]+[ \t]*\r?\n")
_HEADER = re.compile(rb"([!#-'*+.0-9A-Z^-z|~-]+):[ \t]*(.*?)[ \t]*")
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


@dataclass
class Problem:
    """A frame that could not be read: what to answer (code, message, id) and why."""

    code: int
    message: str
    msg_id: int | str | None = None


@dataclass
class Message:
    """One JSON-RPC message, parsed (not yet structured by pygls)."""

    obj: Any


class FrameParser:
    """Incremental, resynchronising parser of `Content-Length` framed JSON bodies."""

    def __init__(self, max_body: int = 64 << 20) -> None:
        self.max_body = max_body
        self._buf = bytearray()
        self._state = "headers"  # headers | body | skip | resync
        self._length: int | None = None
        self._header_problem = ""
        self._headers = 0
        self._skip_left = 0
        self._sniff = bytearray()
        self._sniff_done = False
        self._scanned = 0  # how far the pending body was searched for a header line
        self._tail = b""  # the last CARRY bytes skipped of an oversized body

    def feed(self, data: bytes) -> list[Message | Problem]:
        """Take bytes; return every message or problem they complete."""
        out: list[Message | Problem] = []
        if self._state == "skip":
            data = self._skip(data, out)
        self._buf += data
        while self._step(out):
            pass
        return out

    # --- states --------------------------------------------------------------------------
    def _step(self, out: list[Message | Problem]) -> bool:
        if self._state == "headers":
            return self._header_line(out)
        if self._state == "body":
            return self._body(out)
        if self._state == "resync":
            return self._resync()
        return False  # skip: `feed` and `_headers_done` hand the bytes to `_skip` directly

    def _header_line(self, out: list[Message | Problem]) -> bool:
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > MAX_HEADER_LINE:
                self._garbage(out, "a header line is too long", 1)
                return True
            return False
        line = bytes(self._buf[:end]).rstrip(b"\r")
        if not line:
            del self._buf[: end + 1]
            if self._headers == 0:
                return True  # stray blank line between messages
            return self._headers_done(out)
        match = _HEADER.fullmatch(line)
        if match is None or self._headers >= MAX_HEADERS:
            self._garbage(out, f"not a header: {line[:60]!r}", 1)
            return True
        del self._buf[: end + 1]
        self._headers += 1
        if match.group(1).lower() == b"content-length":
            self._content_length(match.group(2))
        return True

    def _content_length(self, value: bytes) -> None:
        if not value.isdigit() or len(value) > 18:
            self._header_problem = f"bad Content-Length {value[:40]!r}"
            return
        length = int(value)
        if self._length is not None and self._length != length:
            self._header_problem = (
                f"two different Content-Length headers ({self._length}, {length})"
            )
        self._length = length

    def _headers_done(self, out: list[Message | Problem]) -> bool:
        problem, length = self._header_problem, self._length
        self._headers, self._header_problem, self._length = 0, "", None
        if problem or length is None:
            out.append(Problem(PARSE_ERROR, f"{problem or 'no Content-Length header'}; skipped"))
            self._state = "resync"
            return True
        if length > self.max_body:
            self._state, self._skip_left = "skip", length
            self._sniff, self._sniff_done, self._tail = bytearray(), False, b""
            rest = self._skip(bytes(self._buf), out)
            self._buf = bytearray(rest)
            return True
        self._length, self._state, self._scanned = length, "body", 0
        return True

    def _body(self, out: list[Message | Problem]) -> bool:
        assert self._length is not None
        length = self._length
        if len(self._buf) < length:
            early = _find_header_line(self._buf, max(0, self._scanned - CARRY))
            self._scanned = len(self._buf)
            if early is None:
                return False
            out.append(Problem(PARSE_ERROR, "Content-Length longer than the message; skipped"))
            del self._buf[:early]
            self._state, self._length = "headers", None
            return True
        body = bytes(self._buf[:length])
        del self._buf[:length]
        self._state, self._length = "headers", None
        try:
            out.append(Message(json.loads(body)))
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
            nxt = _CL.search(body, 1)
            if nxt is not None:  # a wrong length swallowed the next header: read from it
                self._buf[:0] = body[nxt.start() :]
            else:  # a short length leaves the body's tail: skip it quietly to the next header
                self._state = "resync"
            out.append(Problem(PARSE_ERROR, f"the body is not JSON ({exc}); skipped"))
        return True

    def _skip(self, data: bytes, out: list[Message | Problem]) -> bytes:
        """Drop up to `_skip_left` bytes of an oversized body; returns the bytes after it."""
        take = min(len(data), self._skip_left)
        window = self._tail + data[:take]
        early = _find_header_line(window, 0)
        if early is not None:  # the huge length was wrong: the next message starts here
            in_data = max(0, early - len(self._tail))
            self._sniff += data[: min(in_data, SNIFF_BYTES - len(self._sniff))]
            if not self._sniff_done:
                self._report_oversized(out)
            self._state, self._skip_left, self._tail = "headers", 0, b""
            return window[early:] + data[take:]
        if not self._sniff_done:
            self._sniff += data[: min(take, SNIFF_BYTES - len(self._sniff))]
            if len(self._sniff) >= SNIFF_BYTES or take == self._skip_left:
                self._report_oversized(out)
        self._tail = window[-CARRY:]
        self._skip_left -= take
        if self._skip_left == 0:
            self._state, self._tail = "headers", b""
        return data[take:]

    def _report_oversized(self, out: list[Message | Problem]) -> None:
        self._sniff_done = True
        out.append(
            Problem(
                INVALID_REQUEST,
                f"message larger than the {self.max_body // (1 << 20)} MB limit "
                "(k2lsp --max-message-mb); skipped",
                sniff_id(bytes(self._sniff)),
            )
        )

    def _garbage(self, out: list[Message | Problem], why: str, start: int) -> None:
        out.append(Problem(PARSE_ERROR, f"{why}; skipped to the next Content-Length header"))
        self._headers, self._header_problem, self._length = 0, "", None
        match = _CL.search(self._buf, start)
        if match is not None:
            del self._buf[: match.start()]
            self._state = "headers"
        else:
            self._state = "resync"

    def _resync(self) -> bool:
        match = _CL.search(self._buf)
        if match is None:
            keep = len(b"content-length:") - 1
            if len(self._buf) > keep:
                del self._buf[:-keep]
            return False
        del self._buf[: match.start()]
        self._state = "headers"
        return True


def _find_header_line(data: bytes | bytearray, start: int) -> int | None:
    """Where the first whole `Content-Length: N` line starts in `data` (from `start`)."""
    found: list[int] = []
    for spelling in (b"Content-Length", b"content-length", b"Content-length"):
        pos = data.find(spelling, start)
        while pos != -1 and not _HEADER_LINE.match(data, pos):
            pos = data.find(spelling, pos + 1)
        if pos != -1:
            found.append(pos)
    return min(found) if found else None


def sniff_id(prefix: bytes) -> int | str | None:
    """The top-level `"id"` of the JSON object that `prefix` starts with, if it shows it
    (never one of a later message that follows the object)."""
    tokens = [m.group() for m in _TOKEN.finditer(prefix)]
    if not tokens or tokens[0] != b"{":
        return None
    depth = 0
    for i, tok in enumerate(tokens):
        if tok in (b"{", b"["):
            depth += 1
        elif tok in (b"}", b"]"):
            depth -= 1
            if depth == 0:
                return None  # the object ended without a top-level id
        elif depth == 1 and tok == b'"id"' and tokens[i + 1 : i + 2] == [b":"]:
            if i + 2 >= len(tokens):
                return None
            try:
                value = json.loads(tokens[i + 2])
            except ValueError:
                return None
            return value if isinstance(value, int | str) and not isinstance(value, bool) else None
    return None


Reader = Callable[[], Awaitable[bytes]]


async def run_framed(
    stop: Any,
    read: Reader,
    protocol: Any,
    *,
    max_body: int,
) -> None:
    """The server's read loop: frames from `read()` to `protocol`, problems answered."""
    parser = FrameParser(max_body)
    while not stop.is_set():
        data = await read()
        if not data:
            break
        for item in parser.feed(data):
            if isinstance(item, Problem):
                log.warning("LSP input: %s", item.message)
                answer_problem(protocol, item)
            else:
                dispatch(protocol, item.obj)


def answer_problem(protocol: Any, problem: Problem) -> None:
    """Send the JSON-RPC error response of `problem`."""
    protocol._send_data(
        {
            "jsonrpc": "2.0",
            "id": problem.msg_id,
            "error": {"code": problem.code, "message": problem.message},
        }
    )


def dispatch(protocol: Any, obj: Any) -> None:
    """Structure one parsed message the way pygls does and hand it over."""
    if not isinstance(obj, dict):
        answer_problem(protocol, Problem(INVALID_REQUEST, "a message must be a JSON object"))
        return
    try:
        message = protocol.structure_message(obj)
    except Exception as exc:
        msg_id = obj.get("id")
        if "method" in obj and isinstance(msg_id, int | str) and not isinstance(msg_id, bool):
            code = getattr(exc, "code", INVALID_REQUEST)
            answer_problem(protocol, Problem(int(code), f"invalid message: {exc}", msg_id))
        else:
            log.warning("LSP input: cannot read a message: %s", exc)
        return
    if not hasattr(message, "jsonrpc"):
        answer_problem(protocol, Problem(INVALID_REQUEST, "not a JSON-RPC 2.0 message"))
        return
    try:
        protocol.handle_message(message)
    except Exception:
        log.exception("unable to handle a message")
