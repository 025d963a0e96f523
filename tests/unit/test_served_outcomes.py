"""The replay's rules (streamflow/served/outcomes.py): one served value against the offline answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streamflow.served import outcomes as o

JAN, FEB = datetime(2024, 1, 31, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC)
SERVED = datetime(2024, 3, 5, tzinfo=UTC)
TTL = timedelta(days=45)


def judge(**given):
    case = dict(served_at=SERVED, served_ts=FEB, served_value=1.5, served_status=o.PRESENT, offline_ts=FEB,
                offline_value=1.5, ttl=TTL, from_memory=False, given_at=None, reloaded_at=None)  # fmt: skip
    return o.outcome(**(case | given))


def test_the_same_month_and_value_is_equal_doubles_within_1e_9_and_null_equals_null():
    assert judge() == o.EQUAL
    assert judge(served_value=1.5 + 1e-12) == o.EQUAL
    assert judge(served_value=1.5001) == o.SKEW
    assert judge(served_value=None, served_status=o.NULL_VALUE, offline_value=None) == o.EQUAL
    assert judge(served_value=None, served_status=o.NULL_VALUE) == o.SKEW  # a value on one side only


def test_the_status_is_held_to_the_ttl():
    late = SERVED + timedelta(days=60)
    assert judge(served_at=late, served_status=o.OUTSIDE_MAX_AGE) == o.EQUAL
    assert judge(served_at=late) == o.SKEW  # served as present past its TTL


def test_an_older_month_is_lag_until_the_store_was_given_the_newer_one():
    older = dict(served_ts=JAN, served_value=1.0)
    assert judge(**older, given_at=None) == o.LAG
    assert judge(**older, given_at=SERVED + timedelta(hours=1)) == o.LAG
    assert judge(**older, given_at=SERVED - timedelta(days=1)) == o.SKEW  # it had it, and served the old
    missing = dict(served_ts=None, served_value=None, served_status=o.NOT_FOUND)
    assert judge(**missing, given_at=SERVED - timedelta(days=1)) == o.SKEW


def test_a_month_loaded_again_after_serving_is_restated_and_memory_in_an_outage_is_its_own():
    assert judge(served_value=2.0, reloaded_at=SERVED + timedelta(days=1)) == o.RESTATED
    assert judge(served_value=2.0, reloaded_at=SERVED - timedelta(days=1)) == o.SKEW
    assert judge(served_value=2.0, from_memory=True) == o.MEMORY
