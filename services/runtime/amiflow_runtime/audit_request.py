"""What an audited request says, read without I/O: who, from where, what (secrets redacted), why.

The HTTP capture (audit_http.py) feeds these functions what it saw; they decide what a record keeps. A
body is kept whole when it is small JSON, with the value of every field named like a secret (password,
secret, token, key material …) replaced by a marker; larger bodies by their top-level fields; anything
else (uploads, CSV) by size and sha256, which is what an auditor needs to match a file someone kept.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote

from amiflow_runtime.audit import canonical_json, parse_json_body
from amiflow_runtime.auth import Principal

BODY_LIMIT_BYTES = 16 * 1024  # a body's canonical JSON is kept whole up to this; above, a summary
TEXT_LIMIT = 2000  # a reason, a user agent, a forwarded-for chain
VALUE_LIMIT = 200  # one field of a summarised body
MAX_OBJECTS = 20
MAX_ANSWER_IDS = 50
MAX_FORM_FIELDS = 50
REDACTED = "[redacted]"
REASON_FIELDS = ("reason", "why", "note", "comment")

# Names of fields whose values are secrets wherever they appear (request bodies, queries, answers).
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "authorization", "signature", "private",
                 "cookie", "apikey")
# Names with "key" that are identifiers, not key material.
_KEYS_THAT_ARE_IDS = frozenset({"idempotency_key", "policy_key", "device_key", "message_key"})
_ID_NAME = re.compile(r"(?:^|_)id$|^iccid$")


def is_secret_name(name: str) -> bool:
    """True for a field whose value is a password, secret, token or key material."""
    lowered = name.lower()
    if any(word in lowered for word in _SECRET_WORDS):
        return True
    return "key" in lowered and lowered not in _KEYS_THAT_ARE_IDS


def redacted(value: Any) -> Any:
    """`value` with the value of every secret-named field, at any depth, replaced by a marker."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED if is_secret_name(str(k)) else redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(v) for v in value]
    return value


def capped(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    """`text` cut to `limit` characters, marked when cut."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def body_summary(kept: bytes, size: int, sha256: str, content_type: str | None) -> dict[str, Any] | None:
    """What a record keeps of a request body: its size always; JSON whole (redacted) when small, else its
    top-level fields; other content by size and sha256. `kept` is the body's first bytes.

    The sha256 is left out of any body that holds a secret (or might: form and JSON bodies not read
    whole): a hash of `grant_type=password&username=alice&password=…` is a password hash with a
    predictable salt, and the trail is published on a topic many may read.
    """
    if size == 0:
        return None
    summary: dict[str, Any] = {"size_bytes": size, "sha256": sha256, "content_type": capped(content_type, 200)}
    hashed = {k: v for k, v in summary.items() if k != "sha256"}
    withheld = {**hashed, "sha256_withheld": "the body holds or may hold a secret"}
    if _media(content_type) == "application/x-www-form-urlencoded":
        if len(kept) < size:
            return {**withheld, "truncated": True}
        # An HTML form or an OAuth token request: its fields, secrets (password, client_secret) redacted.
        pairs = parse_qsl(kept.decode("utf-8", "replace"), keep_blank_values=True)[:MAX_FORM_FIELDS]
        form = {name: REDACTED if is_secret_name(name) else capped(value, VALUE_LIMIT) for name, value in pairs}
        return {**(withheld if any(is_secret_name(name) for name, _ in pairs) else summary), "form": form}
    if not _is_json(content_type, kept):
        return summary
    if len(kept) < size:
        return {**withheld, "truncated": True}
    try:
        original = parse_json_body(kept)
    except ValueError:
        return {**withheld, "unreadable": "not valid JSON"}
    document = redacted(original)
    if document != original:
        summary = withheld
    if len(canonical_json({"json": document}).encode()) <= BODY_LIMIT_BYTES:
        summary["json"] = document
    else:
        summary["truncated"] = True
        if isinstance(document, dict):
            summary["fields"] = {k: _short(v) for k, v in document.items() if not isinstance(v, dict | list)}
    return summary


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json(content_type: str | None, kept: bytes) -> bool:
    if content_type:
        media = _media(content_type)
        return media == "application/json" or media.endswith("+json")
    return kept.lstrip()[:1] in (b"{", b"[")


def _short(value: Any) -> Any:
    return capped(value, VALUE_LIMIT) if isinstance(value, str) else value


def reason_of(header: str | None, body: Any) -> str | None:
    """Why: the X-Amiflow-Reason header (percent-decoded, so any language fits), else a reason, why, note
    or comment field of a JSON body."""
    if header and header.strip():
        return capped(unquote(header.strip()))
    if isinstance(body, Mapping):
        for name in REASON_FIELDS:
            value = body.get(name)
            if isinstance(value, str) and value.strip():
                return capped(value.strip())
    return None


def _id_values(document: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    for name, value in document.items():
        if _ID_NAME.search(str(name)) and isinstance(value, str | int) and not isinstance(value, bool):
            yield str(name), str(value)


def objects_of(path_params: Mapping[str, str], body: Any) -> list[str]:
    """The ids an action is about: its path parameters, then the *_id fields at the top of its body."""
    found = [str(v) for v in path_params.values()]
    if isinstance(body, Mapping):
        found += [value for _, value in _id_values(body)]
    unique = list(dict.fromkeys(capped(v, 128) or "" for v in found if v))
    return unique[:MAX_OBJECTS]


def ids_in_answer(answer: Any) -> dict[str, list[str]]:
    """The ids an answer names (e.g. the command it created): *_id fields at its top, and one level down
    in lists and objects (a batch's lines, a replacement's two meters)."""
    ids: dict[str, list[str]] = {}
    documents: list[Mapping[str, Any]] = []
    if isinstance(answer, Mapping):
        documents.append(answer)
        for value in answer.values():
            documents += _documents_in(value)
    else:
        documents += _documents_in(answer)
    count = 0
    for document in documents:
        for name, value in _id_values(document):
            if count >= MAX_ANSWER_IDS or is_secret_name(name):
                continue
            values = ids.setdefault(name, [])
            if value not in values:
                values.append(value)
                count += 1
    return ids


def _documents_in(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def who_of(principal: Principal | None, *, public_reason: str | None = None,
           provider: str | None = None) -> dict[str, Any]:
    """Who acted: the verified token's subject, roles and tenants; on a public route, the provider or
    "anonymous" and how the route authenticates instead."""
    if principal is None:
        return {"subject": provider or "anonymous", "public": capped(public_reason, 300)}
    who: dict[str, Any] = {"subject": principal.subject, "roles": sorted(principal.roles),
                           "home_tenant": principal.home_tenant, "tenant": principal.tenant,
                           "token_id": principal.token_id}
    if principal.sites is not None:
        who["sites"] = sorted(principal.sites)
    if principal.duties is not None:
        who["duties"] = sorted(principal.duties)
    if principal.account_id is not None:
        who["account_id"] = principal.account_id
    return who


Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def trusted_networks(setting: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The proxies whose X-Forwarded-For is believed: comma-separated addresses or CIDR networks."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",") if part.strip()]


def _trusted(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Networks) -> str | None:
    """The client's address: the peer, unless the peer is a trusted proxy; then the right-most address of
    X-Forwarded-For that is not a trusted proxy (addresses left of it could be made up by the client)."""
    if peer is None or not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return capped(hop, 64)
    return capped(hops[0], 64) if hops else peer


def where_of(peer: str | None, forwarded_for: str | None, user_agent: str | None, trusted: Networks) -> dict[str, Any]:
    """From where: the client address as far as trusted proxies vouch for it, the peer, the user agent."""
    where: dict[str, Any] = {"address": client_address(peer, forwarded_for, trusted), "peer": peer,
                             "user_agent": capped(user_agent, 300)}
    if forwarded_for:
        where["forwarded_for"] = capped(forwarded_for, 300)
    return where
