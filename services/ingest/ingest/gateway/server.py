"""The TCP gateway DTUs and concentrators connect in to: admission, login, link table, polling, downlink.

Rules from dtu-connections.md §0: identity is in-band and configured per port; only registered DTUs
may talk (ingest.core.admission); the same id on a new socket wins and the old socket is closed
without undoing the new mapping; no application heartbeats are sent downlink (TCP keepalive and an
idle timeout detect dead links); one request in flight per bus. Sockets are counted and judged
before a byte of them is read, TLS included (gateway.listener).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from amiflow_runtime.service import ServiceRuntime
from amiflow_schemas.events.registry import GatewayKind
from prometheus_client import Counter, Gauge

from ingest.adapters import gateway_db, registry_db
from ingest.config import IngestSettings
from ingest.core.admission import (
    LOGIN_WINDOW_BYTES,
    Admitted,
    ConnectionLimits,
    LinkEnd,
    LoginPolicy,
    NoiseBudget,
    Refusal,
    Refused,
    judge_connection,
    judge_login,
    judge_standing,
)
from ingest.core.dtu_login import Login, LoginIncomplete, LoginRefused, parse_login
from ingest.core.gw376 import Gw376Frame, Gw376Incomplete, NotGw376, looks_like_gw376, parse_gw376
from ingest.core.polling import BusPolicy
from ingest.core.registry import Gateway
from ingest.gateway import listener, tls
from ingest.gateway.downlink import Downlink
from ingest.gateway.link import LINKS_CLOSED, DtuLink
from ingest.gateway.listener import Occupancy, Slot
from ingest.gateway.liveness import Liveness
from ingest.gateway.polling import LinkWork
from ingest.gateway.refusals import Refusals
from ingest.gateway.uplink import GatewaySink

log = logging.getLogger("ingest.gateway")

LINKS = Gauge("amiflow_gateway_links", "DTU links held by this process")
TAKEOVERS = Counter("amiflow_gateway_takeovers_total", "Logins of an id whose link was still open (last wins)",
                    ["address"])
MAX_LOGIN_BYTES = 256


@dataclass(frozen=True)
class LoginResult:
    login: Login
    leftover: bytes  # the first meter bytes may arrive in the same read as the registration (§1)
    concentrator: Gw376Frame | None = None  # a 376.1 login frame, to be confirmed once accepted
    raw: bytes = b""  # the registration packet as it came, kept when the login is refused


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
        self.tls = tls.server_context(settings)  # unreadable certificate files stop the start, not the first DTU
        self.limits = ConnectionLimits(settings.gateway_max_connections_per_address, settings.gateway_max_connections,
                                       settings.gateway_max_pending_logins)
        self.login_policy = LoginPolicy(settings.gateway_accept_unregistered, settings.gateway_unassigned_tenant)
        self.refusals = Refusals(runtime, settings)
        self.liveness = Liveness(runtime, instance)
        self.links: dict[tuple[str, str], DtuLink] = {}
        self.occupancy = Occupancy()
        self.listening = asyncio.Event()
        self._sessions: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Listen until cancelled; then every session ends with it."""
        sockets = await listener.listening_sockets(self.settings.gateway_host, self.settings.gateway_port)
        if self.settings.gateway_accept_unregistered:
            log.warning("INGEST_GATEWAY_ACCEPT_UNREGISTERED is on: DTUs the registry does not know are held for "
                        "commissioning under tenant %s (nothing they send is read); turn it off when done",
                        self.settings.gateway_unassigned_tenant)
        log.info("DTU gateway listening on %s:%d (%s)", self.settings.gateway_host, self.settings.gateway_port,
                 tls.describe(self.tls))
        self.listening.set()
        try:
            await asyncio.gather(*(listener.accept_forever(s, self._accepted) for s in sockets),
                                 self.liveness.run(self.links.values))
        finally:
            for sock in sockets:
                sock.close()
            for task in list(self._sessions):
                task.cancel()
            await asyncio.gather(*self._sessions, return_exceptions=True)
            await self.liveness.flush_on_stop()

    def _accepted(self, sock: socket.socket, address: str, remote: str) -> None:
        held = self.occupancy
        refusal = judge_connection(self.limits, from_address=held.per_address[address], total=held.total,
                                   pending=held.pending)
        if refusal is not None:
            sock.close()
            self.refusals.note(refusal, remote, f"{held.per_address[address]} sockets from {address}, {held.total} "
                                                f"in all, {held.pending} not logged in yet")
            return
        slot = held.take(address, remote)
        task = asyncio.create_task(self._connection(sock, slot), name=f"DTU socket {remote}")
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _connection(self, sock: socket.socket, slot: Slot) -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.settings.gateway_login_timeout_s):  # the handshake is part of login
                    reader, writer = await listener.open_stream(sock, self.tls, self.settings.gateway_login_timeout_s)
            except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
                why = str(exc) or type(exc).__name__
                self.refusals.note(Refusal.TLS_HANDSHAKE if self.tls else Refusal.CLOSED_BEFORE_LOGIN, slot.remote,
                                   f"connection from {slot.remote} failed before login: {why}")
                return
            _keepalive(writer)
            remaining = self.settings.gateway_login_timeout_s - (time.monotonic() - started)
            await self._session(reader, writer, slot, remaining)
        except Exception:  # one DTU's trouble must never take the listener down
            log.exception("DTU session from %s failed", slot.remote)
        finally:
            self.occupancy.release(slot)
            if writer is not None:
                writer.close()
            else:
                sock.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slot: Slot,
                       login_timeout_s: float) -> None:
        result = await self._login(reader, slot.remote, login_timeout_s)
        if result is None:
            return
        registration_id = result.login.registration_id
        gateway = await self._registered(registration_id)
        kind = GatewayKind.CONCENTRATOR if result.concentrator is not None else GatewayKind.DTU
        verdict = judge_login(registration_id, gateway, self.login_policy, kind)
        self.occupancy.logged_in(slot)
        if isinstance(verdict, Refused):  # closed by the caller; the leftover bytes are never decoded
            await self.refusals.refuse(verdict.reason, slot.remote, f"DTU from {slot.remote}: {verdict.detail}",
                                       result.raw, registration_id)
            return
        if verdict.commissioning:
            log.warning("holding unregistered DTU %r from %s for commissioning as %s/%s: nothing it sends is read",
                        registration_id, slot.remote, verdict.gateway.tenant_id, verdict.gateway.gateway_id)
        link = DtuLink(gateway=verdict.gateway, remote=slot.remote, reader=reader, writer=writer, sink=self.sink,
                       policy=self.policy, heartbeat=self.heartbeat,
                       idle_timeout_s=self.settings.gateway_idle_timeout_s, connected_at=self.runtime.clock.now(),
                       gw376=result.concentrator is not None,
                       noise=NoiseBudget(self.settings.gateway_max_bytes_without_frame))
        client = tls.peer_subject(writer.get_extra_info("peercert"))
        if client is not None:
            log.info("DTU %s presented client certificate %s", link.gateway_id, client)
        if result.concentrator is not None:
            await link.concentrator_frame(result.concentrator)  # confirm the login it was accepted on
        await self._hold(link, verdict, result.leftover)

    async def _login(self, reader: asyncio.StreamReader, remote: str, timeout_s: float) -> LoginResult | None:
        buffer = b""
        try:
            async with asyncio.timeout(max(timeout_s, 0.0)):
                while True:
                    try:
                        return _parse_first_bytes(buffer, self.settings)
                    except (LoginIncomplete, Gw376Incomplete):
                        if len(buffer) > LOGIN_WINDOW_BYTES:
                            await self.refusals.refuse(Refusal.LOGIN_TOO_LONG, remote,
                                                       f"{remote} sent {len(buffer)} bytes without a complete "
                                                       "registration packet", buffer[:LOGIN_WINDOW_BYTES])
                            return None
                        chunk = await reader.read(MAX_LOGIN_BYTES)
                        if not chunk:  # a port scan sends nothing: count it, keep nothing
                            detail = f"{remote} closed before its registration packet"
                            if buffer:
                                await self.refusals.refuse(Refusal.CLOSED_BEFORE_LOGIN, remote, detail, buffer)
                            else:
                                self.refusals.note(Refusal.CLOSED_BEFORE_LOGIN, remote, detail)
                            return None
                        buffer += chunk
        except TimeoutError:
            await self.refusals.refuse(Refusal.LOGIN_TIMEOUT, remote, f"no registration packet from {remote} within "
                                                                      f"{self.settings.gateway_login_timeout_s:.0f} s",
                                       buffer)
        except (LoginRefused, NotGw376) as exc:
            await self.refusals.refuse(Refusal.BAD_LOGIN, remote, f"{remote}: {exc}", buffer[:LOGIN_WINDOW_BYTES])
        except (ConnectionError, OSError) as exc:
            await self.refusals.refuse(Refusal.CLOSED_BEFORE_LOGIN, remote, f"{remote} failed before login: {exc}",
                                       buffer)
        return None

    async def _hold(self, link: DtuLink, admitted: Admitted, leftover: bytes) -> None:
        key = (link.tenant_id, link.gateway_id)
        previous = self.links.get(key)
        self.links[key] = link
        if previous is not None:  # last login wins (§0 rule 4)
            self._taken_over(previous, link)
        LINKS.set(len(self.links))
        work = LinkWork(link, self.runtime, self.settings, self.sink, self.downlink,
                        ZoneInfo(self.settings.zone_of(link.tenant_id)))
        tasks: list[asyncio.Task[None]] = []
        try:  # from here on the mapping is ours to undo, whatever fails
            await work.load_meters()
            await self._mark_online(link)
            log.info("DTU %s online from %s with %d meters", link.gateway_id, link.remote, len(work.meters))
            tasks = [*work.start(reads=not admitted.commissioning),
                     asyncio.create_task(self._standing(link, admitted))]
            await link.serve(leftover)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.links.get(key) is link:  # a newer link may own the id by now: leave its mapping alone
                del self.links[key]
                self.liveness.disconnected(link)
            LINKS.set(len(self.links))

    # The two below are calls, not inline blocks, so their sessions end with them: a session left in the frame
    # of a coroutine that holds a link for days is kept alive with it, some 5 KB a link.
    async def _registered(self, registration_id: str) -> Gateway | None:
        async with self.runtime.sessions() as session:
            return await registry_db.gateway_by_registration_id(session, registration_id)

    async def _mark_online(self, link: DtuLink) -> None:
        async with self.runtime.sessions() as session, session.begin():
            await gateway_db.mark_online(session, tenant_id=link.tenant_id, gateway_id=link.gateway_id,
                                         remote=link.remote, instance=self.instance, at=link.connected_at)

    def _taken_over(self, old: DtuLink, new: DtuLink) -> None:
        # A DTU that lost its link silently comes back on a new socket while the old one still looks open
        # (§3 reconnects), so the newer login must win. A copy of its id logs in just the same way: say so.
        same = old.remote.rpartition(":")[0] == new.remote.rpartition(":")[0]
        TAKEOVERS.labels("same" if same else "changed").inc()
        LINKS_CLOSED.labels(LinkEnd.TAKEN_OVER.value).inc()
        quiet_s = time.monotonic() - old.last_seen
        if self.refusals.budget.admit("takeover", time.monotonic()) is not None:
            log.warning("GatewayLinkTakenOver: DTU %s of tenant %s logged in again from %s while its link from %s "
                        "was open (last heard %.0f s ago); the new link wins, the old is closed. If the DTU did not "
                        "reconnect, this is a possible spoof of its registration id", new.gateway_id, new.tenant_id,
                        new.remote, old.remote, quiet_s,
                        extra={"gateway_event": "GatewayLinkTakenOver", "old_remote": old.remote,
                               "remote_address": new.remote, "registration_id": new.gateway.details.registration_id})
        old.close()

    async def _standing(self, link: DtuLink, admitted: Admitted) -> None:
        # Retiring a gateway (or re-registering its id) takes effect on a held link too, not at its next login.
        registration_id = link.gateway.details.registration_id or ""
        while not link.closed.is_set():
            try:
                async with asyncio.timeout(self.settings.gateway_refresh_meters_s):  # no task held per link
                    await link.closed.wait()
                return
            except TimeoutError:
                pass
            try:
                now = await self._registered(registration_id)
            except Exception as exc:  # the registry away: keep the link and ask again next interval
                log.warning("DTU %s: standing not checked (%s: %s); checking again in %.0f s", link.gateway_id,
                            type(exc).__name__, exc, self.settings.gateway_refresh_meters_s)
                continue
            why = judge_standing(admitted, now, self.login_policy)
            if why is not None:
                LINKS_CLOSED.labels(LinkEnd.WITHDRAWN.value).inc()
                log.warning("closing the link of DTU %s from %s: %s", link.gateway_id, link.remote, why,
                            extra={"gateway_event": "GatewayLinkWithdrawn", "remote_address": link.remote})
                link.close()

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
        return LoginResult(Login(frame.registration_id, used), buffer[used:], frame, buffer[:used])
    login = parse_login(settings.gateway_login_format, buffer, settings.gateway_login_length)
    return LoginResult(login, buffer[login.consumed:], raw=login.packet or buffer[:login.consumed])


def _keepalive(writer: asyncio.StreamWriter) -> None:
    # Half-open cellular links are found by TCP keepalive, never by bytes sent down the bus (§0 rule 3).
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
