"""A TCP proxy in front of PostgreSQL that counts round trips on the wire.

A round trip is the client speaking after the server has answered: messages a client
sends before hearing anything back (a pipeline: BEGIN, Parse/Bind/Execute, COMMIT,
Sync) are one round trip, and so is each simple Query or Sync it waits on — BEGIN and
COMMIT included, whatever library sends them. Runs in its own thread, so a test can
point a server process at it and drive that server with a blocking HTTP client. Clients
must connect with sslmode=disable (the proxy does not read TLS).
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections import Counter

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eve.pg import free_port

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


class PgProxy:
    def __init__(self, dsn: str) -> None:
        params = conninfo_to_dict(dsn)
        self.upstream = (params.get("host", "127.0.0.1"), int(params.get("port", 5432)))
        self.port = free_port()
        self.dsn = make_conninfo(dsn, host="127.0.0.1", port=str(self.port), sslmode="disable", gssencmode="disable")
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pgproxy", daemon=True)

    def start(self) -> PgProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def round_trips(self) -> int:
        with self._lock:
            return self.counts["round_trips"]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        answered = [True]  # has the server spoken since the client's last message?
        back = asyncio.ensure_future(self._pipe(server_r, client_w, answered))
        try:
            while True:  # startup: SSL/GSS probes (answered 'N' upstream) come before the real packet
                head = await client_r.readexactly(8)
                length, code = struct.unpack("!ii", head)
                server_w.write(head + await client_r.readexactly(length - 8))
                if code not in (SSL_REQUEST, GSSENC_REQUEST):
                    break
            while True:
                head = await client_r.readexactly(5)
                kind, length = head[:1].decode(), struct.unpack("!i", head[1:])[0]
                body = await client_r.readexactly(length - 4)
                with self._lock:
                    self.counts[kind] += 1
                    if answered[0]:
                        self.counts["round_trips"] += 1
                        answered[0] = False
                server_w.write(head + body)
                await server_w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            server_w.close()
            client_w.close()
            back.cancel()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answered: list[bool]) -> None:
        try:
            while data := await reader.read(65536):
                answered[0] = True
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
