"""The TCP gateway DTUs and concentrators connect in to: login, link table, polling and downlink.

Rules from dtu-connections.md §0: identity is in-band and configured per port; unknown DTUs are
refused; the same id on a new socket wins and the old socket is closed without undoing the new
mapping; no application heartbeats are sent downlink (TCP keepalive and an idle timeout detect dead
links); one request in flight per bus.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter as Tally
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from amiflow_runtime.service import ServiceRuntime
from amiflow_schemas.events.devices import RejectionReason
from prometheus_client import Counter, Gauge

from ingest.adapters import gateway_db, registry_db
from ingest.config import IngestSettings
from ingest.core.dtu_login import Login, LoginIncomplete, LoginRefused, parse_login
from ingest.core.gw376 import Gw376Frame, Gw376Incomplete, NotGw376, looks_like_gw376, parse_gw376
from ingest.core.polling import BusPolicy
from ingest.core.registry import Gateway
from ingest.gateway.downlink import Downlink
from ingest.gateway.link import DtuLink, Rejection
from ingest.gateway.polling import LinkWork
from ingest.gateway.uplink import GatewaySink, reject

log = logging.getLogger("ingest.gateway")

LINKS = Gauge("amiflow_gateway_links", "DTU links held by this process")
REFUSED = Counter("amiflow_gateway_refused_total", "Connections refused before login completed", ["reason"])
MAX_LOGIN_BYTES = 256


@dataclass(frozen=True)
class LoginResult:
    login: Login
    leftover: bytes  # the first meter bytes may arrive in the same read as the registration (§1)
    concentrator: Gw376Frame | None = None  # a 376.1 login frame, to be confirmed once accepted


class DtuGateway:
    """An asyncio TCP server holding one DtuLink per logged-in DTU."""

    def __init__(self, runtime: ServiceRuntime, settings: IngestSettings, instance: str) -> None:
        self.runtime = runtime
        self.settings = settings
        self.instance = instance
        self.sink = GatewaySink(runtime)
        self.downlink = Downlink(runtime, self.sink)
        self.policy = BusPolicy(settings.gateway_reply_timeout_s, settings.gateway_retries, settings.gateway_min_gap_s)
        self.heartbeat = bytes.fromhex(settings.gateway_heartbeat_hex) if settings.gateway_heartbeat_hex else None
        self.links: dict[tuple[str, str], DtuLink] = {}
        self.per_address: Tally[str] = Tally()
        self.listening = asyncio.Event()

    async def run(self) -> None:
        """Listen until cancelled."""
        server = await asyncio.start_server(self._accept, self.settings.gateway_host, self.settings.gateway_port)
        log.info("DTU gateway listening on %s:%d", self.settings.gateway_host, self.settings.gateway_port)
        self.listening.set()
        async with server:
            await server.serve_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        address, remote = str(peer[0]), f"{peer[0]}:{peer[1]}"
        if self.per_address[address] >= self.settings.gateway_max_connections_per_address:
            REFUSED.labels("too_many_connections").inc()
            log.warning("refusing %s: %d connections from that address already", remote, self.per_address[address])
            writer.close()
            return
        self.per_address[address] += 1
        _keepalive(writer)
        try:
            await self._session(reader, writer, remote)
        except Exception:  # one DTU's trouble must never take the listener down
            log.exception("DTU session from %s failed", remote)
        finally:
            self.per_address[address] -= 1
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, remote: str) -> None:
        result = await self._login(reader, remote)
        if result is None:
            return
        async with self.runtime.sessions() as session:
            gateway = await registry_db.gateway_by_registration_id(session, result.login.registration_id)
        if gateway is None or gateway.details.maintenance.value == "retired":
            REFUSED.labels("unknown_dtu").inc()
            await self._refuse(remote, result.login.registration_id.encode(),
                               f"DTU {result.login.registration_id!r} from {remote} is not registered (or retired)")
            return
        link = DtuLink(gateway=gateway, remote=remote, reader=reader, writer=writer, sink=self.sink,
                       policy=self.policy, heartbeat=self.heartbeat,
                       idle_timeout_s=self.settings.gateway_idle_timeout_s, connected_at=self.runtime.clock.now(),
                       gw376=result.concentrator is not None)
        if result.concentrator is not None:
            await link.concentrator_frame(result.concentrator)  # confirm the login it was accepted on
        await self._hold(link, result.leftover)

    async def _login(self, reader: asyncio.StreamReader, remote: str) -> LoginResult | None:
        buffer = b""
        try:
            async with asyncio.timeout(self.settings.gateway_login_timeout_s):
                while True:
                    try:
                        return _parse_first_bytes(buffer, self.settings)
                    except (LoginIncomplete, Gw376Incomplete):
                        chunk = await reader.read(MAX_LOGIN_BYTES)
                        if not chunk:
                            return None
                        buffer += chunk
        except TimeoutError:
            REFUSED.labels("login_timeout").inc()
            await self._refuse(remote, buffer, f"no registration packet from {remote} within "
                                               f"{self.settings.gateway_login_timeout_s:.0f} s")
        except (LoginRefused, NotGw376) as exc:
            REFUSED.labels("bad_login").inc()
            await self._refuse(remote, buffer, f"{remote}: {exc}")
        return None

    async def _refuse(self, remote: str, raw: bytes, detail: str) -> None:
        log.warning("refused DTU connection: %s", detail)
        rejection = Rejection(raw or b"\x00", RejectionReason.UNKNOWN_DEVICE, detail)
        source = remote.replace(":", "-")
        await reject(self.runtime, self.settings.gateway_unassigned_tenant, source, rejection)

    async def _hold(self, link: DtuLink, leftover: bytes) -> None:
        key = (link.tenant_id, link.gateway_id)
        previous = self.links.get(key)
        self.links[key] = link
        if previous is not None:  # last login wins (§0 rule 4)
            log.info("DTU %s logged in again from %s; closing the old link", link.gateway_id, link.remote)
            previous.close()
        LINKS.set(len(self.links))
        work = LinkWork(link, self.runtime, self.settings, self.sink, self.downlink,
                        ZoneInfo(self.settings.zone_of(link.tenant_id)), self.instance)
        await work.load_meters()
        async with self.runtime.sessions() as session, session.begin():
            await gateway_db.mark_online(session, tenant_id=link.tenant_id, gateway_id=link.gateway_id,
                                         remote=link.remote, instance=self.instance, at=link.connected_at)
        log.info("DTU %s online from %s with %d meters", link.gateway_id, link.remote, len(work.meters))
        tasks = work.start()
        try:
            await link.serve(leftover)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.links.get(key) is link:  # a newer link may own the id by now: leave its mapping alone
                del self.links[key]
                await work.record_seen(online=False)
            LINKS.set(len(self.links))

    def link_for(self, tenant_id: str, gateway_id: str) -> Gateway | None:
        """The gateway record of a held link (for tests and the ops view)."""
        link = self.links.get((tenant_id, gateway_id))
        return link.gateway if link else None


def _parse_first_bytes(buffer: bytes, settings: IngestSettings) -> LoginResult:
    # A 376.1 concentrator announces itself with its own login frame (AFN 02 F1), whatever the
    # port's DTU login format is; anything else is read in the configured format (§1, §5).
    if looks_like_gw376(buffer):
        frame, used = parse_gw376(buffer)
        if not frame.is_login:
            raise NotGw376(f"a 376.1 concentrator must log in first (AFN 02 F1), not AFN {frame.afn:02X}")
        return LoginResult(Login(frame.registration_id, used), buffer[used:], frame)
    login = parse_login(settings.gateway_login_format, buffer, settings.gateway_login_length)
    return LoginResult(login, buffer[login.consumed:])


def _keepalive(writer: asyncio.StreamWriter) -> None:
    # Half-open cellular links are found by TCP keepalive, never by bytes sent down the bus (§0 rule 3).
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
