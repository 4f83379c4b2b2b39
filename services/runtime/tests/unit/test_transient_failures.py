"""Which failures the pipeline waits out (an outage) and which count towards dead-lettering the event."""

from __future__ import annotations

import pytest
from amiflow_runtime.pipeline import is_transient
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError


class ServerSaid(Exception):
    """What SQLAlchemy's asyncpg adapter raises: the server's SQLSTATE on the error."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", ["57P01", "57P02", "57P03", "08006", "08001"])
def test_a_database_shutting_down_starting_up_or_unreachable_is_waited_out(sqlstate: str) -> None:
    # 57P03 is "the database system is shutting down" during a fast shutdown: it once dead-lettered events.
    assert is_transient(DBAPIError("SELECT 1", None, ServerSaid(sqlstate)))


def test_lost_connections_and_network_errors_are_waited_out() -> None:
    assert is_transient(OperationalError("SELECT 1", None, Exception("gone")))
    assert is_transient(DBAPIError("SELECT 1", None, Exception("closed"), connection_invalidated=True))
    assert is_transient(ConnectionRefusedError())


@pytest.mark.parametrize("failure", [IntegrityError("INSERT", None, ServerSaid("23505")),
                                     DBAPIError("SELECT", None, ServerSaid("42P01")), ValueError("bad event")])
def test_what_the_event_or_the_code_got_wrong_is_not_an_outage(failure: Exception) -> None:
    assert not is_transient(failure)
