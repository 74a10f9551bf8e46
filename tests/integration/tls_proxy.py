"""A TLS-terminating TCP proxy in front of the embedded broker (test harness, not a fake broker).

Tansu 0.6.0 cannot serve TLS itself (its ``--cert`` and ``--key`` flags are declared
mutually exclusive, while it only enables TLS when both are given), so the TLS tests put
this in front of it, the way a TLS-terminating load balancer sits in front of a broker:
clients make real TLS connections (server certificate from the test CA, host name
checked, client certificate required and verified), and the proxy forwards the bytes to
the broker's plaintext port. The broker advertises the proxy's address, so every
connection a client makes after bootstrapping goes through TLS too.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from concurrent.futures import Future

from streams.broker import free_port
from tests.certs import Certs

__all__ = ["TlsProxy"]


class TlsProxy:
    def __init__(self, upstream_port: int, certs: Certs, *, port: int = 0) -> None:
        self.port = port or free_port()
        self._upstream = upstream_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs.ca))
        self._context.load_cert_chain(str(certs.server_cert), str(certs.server_key))
        self._context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: a client certificate is required
        self.clients: list[str] = []  # the verified client certificate's CN, per connection
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> TlsProxy:
        self._thread.start()
        started: Future[asyncio.Server] = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self._context), self._loop
        )
        self._server = started.result(10)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        subject = dict(item[0] for item in peer.get("subject", ()))
        self.clients.append(str(subject.get("commonName")))
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        server, self._server = self._server, None

        async def shutdown() -> None:
            if server is not None:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()
