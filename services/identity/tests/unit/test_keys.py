"""A signing key is replaced when old, and a retired key stays published exactly as long as its tokens live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from identity.core.keys import SigningKeyInfo, jwks, new_key_id, published, rotation_due

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def key(kid: str, created: datetime, retired: datetime | None = None) -> SigningKeyInfo:
    return SigningKeyInfo(kid, {"kid": kid, "kty": "EC"}, created, retired)


def test_a_key_is_due_for_rotation_at_its_age_limit() -> None:
    active = key("k1", T0)
    assert not rotation_due(active, T0 + timedelta(days=89, hours=23), 90)
    assert rotation_due(active, T0 + timedelta(days=90), 90)
    assert rotation_due(None, T0, 90)


def test_a_retired_key_is_published_for_the_longest_token_lifetime_and_the_leeway() -> None:
    keys = [key("old", T0 - timedelta(days=90), retired=T0), key("new", T0)]
    window = {"longest_lifetime_s": 3600, "leeway_s": 30}
    assert [k.kid for k in published(keys, T0 + timedelta(seconds=3629), **window)] == ["new", "old"]
    assert [k.kid for k in published(keys, T0 + timedelta(seconds=3630), **window)] == ["new"]


def test_the_jwks_lists_the_active_key_first_then_the_newest_retired() -> None:
    keys = [key("k1", T0, T0 + timedelta(minutes=1)), key("k3", T0 + timedelta(minutes=2)),
            key("k2", T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))]
    shown = published(keys, T0 + timedelta(minutes=3), longest_lifetime_s=3600, leeway_s=30)
    assert jwks(shown) == {"keys": [{"kid": "k3", "kty": "EC"}, {"kid": "k2", "kty": "EC"},
                                    {"kid": "k1", "kty": "EC"}]}


def test_a_key_id_says_the_day_it_was_made() -> None:
    assert new_key_id(T0, "ab12cd34") == "20261123-ab12cd34"
