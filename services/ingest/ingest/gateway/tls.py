"""TLS on the DTU port, for DTUs that speak it (most send plain TCP, dtu-connections.md §1).

With a CA file the gateway also asks for a client certificate and refuses a DTU without one that CA
issued (mutual TLS): then a leaked registration id alone no longer lets a stranger talk.
"""

from __future__ import annotations

import ssl

from ingest.config import IngestSettings


def server_context(settings: IngestSettings) -> ssl.SSLContext | None:
    """The gateway's TLS context (TLS 1.2 or later), or None for plain TCP; bad files fail at start-up."""
    if settings.gateway_tls_certfile is None or settings.gateway_tls_keyfile is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # 1.0 and 1.1 are broken and deprecated (RFC 8996)
    context.load_cert_chain(settings.gateway_tls_certfile, settings.gateway_tls_keyfile)
    if settings.gateway_tls_cafile is not None:
        # Only this CA: the system's public CAs must not vouch for a DTU.
        context.load_verify_locations(cafile=settings.gateway_tls_cafile)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def describe(context: ssl.SSLContext | None) -> str:
    """How the port speaks, for the start-up log."""
    if context is None:
        return "plain TCP"
    return "mutual TLS" if context.verify_mode is ssl.CERT_REQUIRED else "TLS"


def peer_subject(cert: object) -> str | None:
    """The client certificate's subject as CN=…,O=…, for the login log (mutual TLS only)."""
    if not isinstance(cert, dict) or "subject" not in cert:
        return None
    return ",".join(f"{key}={value}" for rdn in cert["subject"] for key, value in rdn)
