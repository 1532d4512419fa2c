"""The language server's transport: pygls' reader and writer replaced by k2lsp's own.

- `SafeProtocol`: pygls' protocol whose every outgoing message passes the redaction boundary
  (`k2lsp.redact.boundary`) on its way to the writer;
- `serve_io` / `serve_tcp`: read with the resynchronising `k2lsp.server.framing` reader (a
  malformed frame is answered and skipped, oversized bodies are never held in memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import threading
from typing import TYPE_CHECKING, Any, BinaryIO

from pygls.exceptions import JsonRpcInternalError
from pygls.protocol import LanguageServerProtocol

if TYPE_CHECKING:
    from k2lsp.server.app import K2LanguageServer

log = logging.getLogger(__name__)
READ_CHUNK = 65536


class SafeProtocol(LanguageServerProtocol):
    """pygls' protocol whose every outgoing message passes the redaction boundary
    (`k2lsp.redact.boundary.lsp_body`) on its way to the writer."""

    def _send_data(self, data: Any) -> None:
        if not data:
            return
        if self.writer is None:
            log.error("cannot send: no transport")
            return
        from k2lsp.redact.boundary import APPLY_EDIT, lsp_body, lsp_message

        try:
            if getattr(data, "method", None) == APPLY_EDIT:  # the document text is not scanned
                plain = self._converter.unstructure(data)
                body = json.dumps(lsp_message(plain), default=self._serialize_message)
            else:
                body = lsp_body(json.dumps(data, default=self._serialize_message))
            raw = body.encode(self.CHARSET)
            if self._include_headers:
                head = f"Content-Length: {len(raw)}\r\n"
                head += f"Content-Type: {self.CONTENT_TYPE}; charset={self.CHARSET}\r\n\r\n"
                raw = head.encode("ascii") + raw
            self.writer.write(raw)  # stdio and TCP writers are synchronous
        except BrokenPipeError:
            log.error("cannot send: the client is gone")
            raise
        except Exception as error:
            log.exception("error sending data")
            self._server._report_server_error(error, JsonRpcInternalError)


def serve_io(server: K2LanguageServer, stdin: BinaryIO | None, stdout: BinaryIO | None) -> None:
    """Serve over stdin/stdout until the client goes away or sends `exit`."""
    from pygls.io_ import StdoutWriter

    from k2lsp.server.framing import run_framed

    server._stop_event = threading.Event()
    source = stdin or sys.stdin.buffer
    server.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
    read1 = getattr(source, "read1", None) or source.read

    async def read() -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(server.thread_pool, read1, READ_CHUNK)

    try:
        asyncio.run(
            run_framed(server._stop_event, read, server.protocol, max_body=server.max_message_bytes)
        )
    except BrokenPipeError:
        log.error("the connection to the client is lost; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()


def serve_tcp(server: K2LanguageServer, host: str, port: int) -> None:
    """Serve TCP clients on host:port (one session: the first client to disconnect ends it)."""
    from k2lsp.server.framing import run_framed

    server._stop_event = stop = threading.Event()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.protocol.set_writer(writer)  # type: ignore[arg-type]

        async def read() -> bytes:
            return await reader.read(READ_CHUNK)

        await run_framed(stop, read, server.protocol, max_body=server.max_message_bytes)
        server.shutdown()

    async def main() -> None:
        server._server = await asyncio.start_server(connection, host, port)
        async with server._server:
            await server._server.serve_forever()

    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(main())
