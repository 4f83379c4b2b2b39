"""Meter profiles: the shipped ones validate, and a broken one is refused naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from amiflow_schemas.events.devices import FrameProtocol
from ingest.core.protocols import DiOrder, ProfileError, parse_profile
from ingest.profiles import load_all, load_profile, load_profile_file, profile_names

REQUIRED = {"cjt188-water-2004", "cjt188-water-2018", "cjt188-water-foxedge", "cjt188-gas", "cjt188-heat",
            "dlt645-single-phase", "dlt645-three-phase", "modbus-eastron-sdm120", "mbus-heat-meter"}


def _doc(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"name": "test-meter", "description": "a test meter", "protocol": "cjt188",
                                "utility": "water", "cjt188": {"meter_type": 0x10}}
    document.update(overrides)
    return document


def test_the_shipped_profiles_cover_every_required_model_and_all_validate() -> None:
    profiles = load_all()
    assert REQUIRED <= set(profiles)
    assert all(profile.name == name for name, profile in profiles.items())


def test_the_2004_and_2018_water_profiles_differ_in_di_order_on_send() -> None:
    old, new = load_profile("cjt188-water-2004").cjt188, load_profile("cjt188-water-2018").cjt188
    assert old is not None and new is not None
    assert (old.di_order, new.di_order) == (DiOrder.HIGH_FIRST, DiOrder.LOW_FIRST)


def test_hex_text_and_numbers_both_give_byte_codes() -> None:
    profile = parse_profile(_doc(cjt188={"meter_type": "0x10", "valve": {"write_control": "2A", "open": 0x55},
                                         "unit_codes": {"2B": {"unit": "m3", "factor": "0.001"}}}))
    assert profile.cjt188 is not None and profile.cjt188.valve is not None
    assert (profile.cjt188.valve.write_control, profile.cjt188.unit_codes[0x2B].unit) == (0x2A, "m3")


@pytest.mark.parametrize(("overrides", "field"), [
    ({"cjt188": {"meter_type": "ZZ"}}, "cjt188.meter_type"),
    ({"cjt188": {"meter_type": 0x10, "di_order": "unknown"}}, "cjt188.di_order"),
    ({"cjt188": {"meter_type": 0x10, "unit_codes": {"2B": {"unit": "m3", "factor": 0.1}}}}, "factor"),
    ({"cjt188": {"meter_type": 0x10, "surprise": 1}}, "cjt188.surprise"),
    ({"protocol": "dlt645_2007"}, "needs a 'dlt645' section"),
    ({"protocol": "dlt645_1997"}, "has no codec"),
    ({"name": "Bad Name"}, "name"),
])
def test_a_broken_profile_is_refused_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ProfileError, match=field.replace(".", r"\.")):
        parse_profile(_doc(**overrides))


def test_dlt645_data_ids_must_be_quoted_8_hex_digits() -> None:
    with pytest.raises(ProfileError, match=r"dlt645\.reads"):
        parse_profile(_doc(protocol="dlt645_2007", utility="electricity", cjt188=None,
                           dlt645={"reads": [10000]}))  # YAML reads an unquoted 00010000 as 10000


def test_an_unknown_profile_name_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="cjt188-water-2004"):
        load_profile("no-such-meter")


def test_a_site_profile_file_loads_and_bad_yaml_is_reported(tmp_path: Path) -> None:
    good = tmp_path / "site.yaml"
    good.write_text("name: site-meter\ndescription: x\nprotocol: mbus\nutility: heat\n", encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n", encoding="utf-8")
    assert load_profile_file(good).protocol is FrameProtocol.MBUS
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile_file(bad)


def test_profile_names_are_the_yaml_files() -> None:
    assert profile_names() == sorted(profile_names()) and "pulse-water-10l" in profile_names()
