"""Run the server: bind, announce the address, serve until SIGTERM/SIGINT, shut down cleanly."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from types import FrameType

import uvicorn

from batchform import config
from batchform.server.app import create_app
from batchform.server.transport import GatheringHttpProtocol
from batchform.service import Service, ServiceSettings


def run_server(
    settings: ServiceSettings,
    host: str,
    port: int,
    access_keys: Mapping[str, str] | None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve until a signal; uvicorn then stops accepting and the app hands jobs back."""
    service = Service(settings)
    app = create_app(service, access_keys)
    sock = _bind(host, port)
    address = sock.getsockname()
    server = _GracefulServer(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=30,
            access_log=False,
            # uvloop answers more calls a second but starves some connections under load
            # (p99 in seconds with 50 busy clients); asyncio's loop keeps every client served.
            loop="asyncio",
            http=GatheringHttpProtocol,
            # Clients talk to the server directly; no proxy headers to trust or parse.
            proxy_headers=False,
        )
    )
    auth = "SigV4 required" if access_keys is not None else "unsigned requests accepted"
    announce(
        f"batchform server listening on http://{_show(host)}:{address[1]} "
        f"({auth}; state in {config.home()}; database {service.store.engine.url!r})"
    )
    server.run(sockets=[sock])


class _GracefulServer(uvicorn.Server):
    """Exits 0 once a SIGTERM/SIGINT shutdown has finished cleanly.

    uvicorn re-raises the signal after its graceful shutdown, which would make every
    clean stop look like a crash to the process manager.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say they are
    # TCP, and without it every keep-alive answer's body waits 40 ms behind its headers
    # (Nagle against the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    return sock


def _show(host: str) -> str:
    return f"[{host}]" if ":" in host else host
