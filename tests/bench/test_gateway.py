"""Smoke test of the gateway benchmark: a quick fleet logs in, is held and let go; figures, never a speed verdict."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from amiflow_bench.environment import bench_env
from amiflow_bench.gateway import GOAL_CONNECTIONS, SCALES, fleet_csv, measure, operator_settings, registration_id

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with bench_env(tmp_path_factory.mktemp("gateway-bench")) as env:
        yield measure(env, "quick")


def test_the_fleet_files_name_one_dtu_per_socket_and_one_push_meter_behind_each() -> None:
    gateways_csv, meters_csv = fleet_csv(3)
    gateways = list(csv.DictReader(io.StringIO(gateways_csv)))
    meters = list(csv.DictReader(io.StringIO(meters_csv)))

    assert [g["registration_id"] for g in gateways] == [registration_id(i) for i in range(3)]
    assert len({g["registration_id"] for g in gateways}) == 3 and all(len(g["registration_id"]) == 15
                                                                       for g in gateways)
    assert [m["gateway_id"] for m in meters] == [g["gateway_id"] for g in gateways]
    assert {m["schedule"] for m in meters} == {"push"}, "no poll falls due while the bench holds the links"


def test_the_operator_raises_the_socket_caps_above_the_fleet_and_leaves_the_pending_login_cap() -> None:
    raised = operator_settings(10_000)

    assert int(raised["INGEST_GATEWAY_MAX_CONNECTIONS"]) > 10_000
    assert int(raised["INGEST_GATEWAY_MAX_CONNECTIONS_PER_ADDRESS"]) > 10_000
    assert "INGEST_GATEWAY_MAX_PENDING_LOGINS" not in raised
    assert all(scale.wave < 500 for scale in SCALES.values()), "waves stay below the default pending-login cap"


def test_a_quick_fleet_is_admitted_held_to_the_end_and_seen_online_by_ingest(quick_run: dict[str, Any]) -> None:
    asked = SCALES["quick"].dtus

    assert json.loads(json.dumps(quick_run)) == quick_run, "plain JSON-able figures"
    assert quick_run["scale"] == "quick" and quick_run["dtus_registered"] == asked
    # A socket the kernel reset before ingest accepted it reconnects once, as a DTU does: still all held.
    assert quick_run["connections_attempted"] == asked + quick_run["dtus_that_reconnected"]
    assert quick_run["connections_admitted"] == asked
    assert quick_run["connections_held_to_end"] == quick_run["ingest_links_at_end"] == asked
    assert quick_run["ingest_sockets_at_end"] == asked
    online, sampled = quick_run["api_sample_online"].split("/")
    assert online == sampled and int(sampled) > 0
    assert quick_run["heartbeats_sent"] > 0
    assert quick_run["goal_met"] == (asked >= GOAL_CONNECTIONS)


def test_a_quick_run_reports_the_listening_process_memory_cpu_and_descriptors(quick_run: dict[str, Any]) -> None:
    asked = SCALES["quick"].dtus
    memory = quick_run["memory_mib"]

    assert quick_run["gateway_process"].startswith("ingest-")
    assert set(memory) == {"started", "registered", "all_connected", "holding_end", "holding_peak",
                           "after_disconnect"}
    assert all(figure > 0 for point in memory.values() for figure in point.values())
    assert quick_run["memory_per_connection_kib"]["rss"] > 0, "links cost memory"
    assert quick_run["ingest_cpu_s_while_holding"] > 0
    assert quick_run["ingest_open_files_while_holding"] >= asked, "a descriptor per held socket"
    assert quick_run["ingest_open_files_limit"] > asked
    assert quick_run["links_after_release"] == 0, "every link is let go once its socket closes"
    assert quick_run["api_sample_online_after_release"].startswith("0/"), "and recorded offline"
