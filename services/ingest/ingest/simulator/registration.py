"""Registering a fleet with ingest through the registry's CSV import (POST /v1/registry/import).

One gateways file, then one meters file (meters name their gateway, which must exist first). The
rows depend only on the seed, so importing again changes nothing: the registry answers every row
"unchanged". The API may still be starting, so a refused connection or a 5xx is retried until a
deadline; a 422 (rows with problems) is not, because the same rows would fail again.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger("ingest.simulator.registration")

GATEWAY_COLUMNS = ("gateway_id", "kind", "registration_id", "model", "firmware")
METER_COLUMNS = ("meter_id", "utility", "profile", "bus_address", "unit", "multiplier", "schedule", "gateway_id")
LOCATED_METER_COLUMNS = (*METER_COLUMNS, "premise", "room", "building", "latitude", "longitude")
IMPORT_PATH = "/v1/registry/import"


class RegistrationFailed(RuntimeError):
    """The registry refused the rows, or did not answer before the deadline."""


@dataclass(frozen=True)
class ImportOutcome:
    """What the registry reported for one file."""

    kind: str
    registered: int
    updated: int
    unchanged: int


def csv_text(columns: tuple[str, ...], rows: Iterable[Mapping[str, str]]) -> str:
    """CSV with a header row, CR LF line ends (what spreadsheets write)."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def bearer_headers() -> dict[str, str]:
    """The simulator's credentials for the platform's APIs: the token in AMIFLOW_API_TOKEN (`amiflow up`
    fetches one from the identity service for it), or none (the APIs then answer 401 with the reason)."""
    token = os.environ.get("AMIFLOW_API_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


async def import_fleet(api_url: str, tenant: str, gateways_csv: str, meters_csv: str, *, deadline_s: float = 120.0,
                       client: httpx.AsyncClient | None = None) -> list[ImportOutcome]:
    """Import the gateways file, then the meters file; RegistrationFailed when either is refused."""
    own = client is None
    http = client or httpx.AsyncClient(timeout=30.0, headers=bearer_headers())
    try:
        deadline = asyncio.get_running_loop().time() + deadline_s
        return [await _import(http, api_url, tenant, kind, body, deadline)
                for kind, body in (("gateways", gateways_csv), ("meters", meters_csv))]
    finally:
        if own:
            await http.aclose()


async def _import(http: httpx.AsyncClient, api_url: str, tenant: str, kind: str, body: str,
                  deadline: float) -> ImportOutcome:
    url = api_url.rstrip("/") + IMPORT_PATH
    headers = {"content-type": "text/csv", "x-tenant-id": tenant}
    params = {"kind": kind, "dry_run": "false"}
    wait = 0.5
    while True:
        problem = await _attempt(http, url, params, headers, body, kind)
        if isinstance(problem, ImportOutcome):
            return problem
        loop = asyncio.get_running_loop()
        if loop.time() + wait > deadline:
            raise RegistrationFailed(f"registry import of {kind} at {url} did not succeed in time: {problem}")
        log.info("registry not ready (%s); retrying in %.1f s", problem, wait)
        await asyncio.sleep(wait)
        wait = min(wait * 2, 5.0)


async def _attempt(http: httpx.AsyncClient, url: str, params: dict[str, str], headers: dict[str, str], body: str,
                   kind: str) -> ImportOutcome | str:
    """The outcome, or why it is worth trying again; raises when trying again cannot help."""
    try:
        response = await http.post(url, params=params, headers=headers, content=body.encode("utf-8"))
    except httpx.TransportError as exc:
        return f"{type(exc).__name__}: {exc}"
    if response.status_code >= 500:
        return f"HTTP {response.status_code}"
    if response.status_code != 200:
        raise RegistrationFailed(f"registry refused the {kind} file (HTTP {response.status_code}): "
                                 f"{_problems(response)}")
    report = response.json()
    outcome = ImportOutcome(kind, report["registered"], report["updated"], report["unchanged"])
    log.info("registered %s: %d new, %d updated, %d unchanged", kind, outcome.registered, outcome.updated,
             outcome.unchanged)
    return outcome


def _problems(response: httpx.Response) -> str:
    try:
        report: Any = response.json()
    except ValueError:
        return response.text[:2000]
    problems = report.get("problems") if isinstance(report, dict) else None
    if not problems:
        return str(report)[:2000]
    shown = [f"line {p['line']} {p['device_id']}: {'; '.join(p['reasons'])}" for p in problems[:10]]
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return " | ".join(shown) + more
