"""The DTU port's sockets, accepted by hand so that nothing is read before the gateway has decided.

asyncio.start_server starts reading a socket the moment it is accepted: a TLS upgrade after that
loses a ClientHello already read, and a handshake it does itself runs before any limit is checked.
Accepting with sock_accept, then wrapping with connect_accepted_socket (the TLS handshake included)
keeps the order the limits need: count the socket, decide, and only then read from it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Gauge

log = logging.getLogger("ingest.gateway.listener")

BACKLOG = 128
# The process is out of descriptors or buffers: accepting again at once would spin. asyncio's own server
# waits a second as well.
OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
RETRY_ACCEPT_S = 1.0
READ_LIMIT = 64 * 1024

Accepted = Callable[[socket.socket, str, str], None]  # the socket, the peer's address, "address:port"
SOCKETS = Gauge("amiflow_gateway_sockets", "Sockets on the DTU port held by this process, logged in or not")


@dataclass
class Slot:
    """One accepted socket's place in the counts, until it closes."""

    address: str
    remote: str
    pending: bool = True  # not logged in yet: counted against gateway_max_pending_logins


@dataclass
class Occupancy:
    """The sockets this process holds: per peer address, in all, and not logged in yet."""

    per_address: Tally[str] = field(default_factory=Tally)
    total: int = 0
    pending: int = 0

    def take(self, address: str, remote: str) -> Slot:
        self.per_address[address] += 1
        self.total += 1
        self.pending += 1
        SOCKETS.set(self.total)
        return Slot(address, remote)

    def logged_in(self, slot: Slot) -> None:
        if slot.pending:
            slot.pending = False
            self.pending -= 1

    def release(self, slot: Slot) -> None:
        self.logged_in(slot)
        self.per_address[slot.address] -= 1
        if self.per_address[slot.address] <= 0:
            del self.per_address[slot.address]  # a Counter keeps zero entries: one per address ever seen
        self.total -= 1
        SOCKETS.set(self.total)


async def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address ``host`` resolves to."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def accept_forever(listener: socket.socket, accepted: Accepted) -> None:
    """Hand every new connection to ``accepted`` until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            sock, peer = await loop.sock_accept(listener)
        except OSError as exc:
            if exc.errno in OUT_OF_RESOURCES:
                log.error("cannot accept DTU connections: %s; retrying in %.0f s", exc, RETRY_ACCEPT_S)
                await asyncio.sleep(RETRY_ACCEPT_S)
            continue  # a peer that reset before we accepted it (ECONNABORTED) is no concern of ours
        address = str(peer[0])
        accepted(sock, address, f"{address}:{peer[1]}")


async def open_stream(sock: socket.socket, tls: ssl.SSLContext | None,
                      handshake_timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Start reading an accepted socket, after the TLS handshake when the port speaks TLS."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_LIMIT, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    if tls is None:
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock)
    else:
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock, ssl=tls,
                                                          ssl_handshake_timeout=handshake_timeout_s)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
