"""The online stores' shared layout and the statements both build, without a server: names,
blobs, the months log, the guarded upsert, the Redis write script and the API's read plans."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from feast import Entity, FeatureView, Field, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.types import Bool, Float64, Int64, String, UnixTimestamp
from psycopg import sql

from serving.catalog import Catalog, UnknownSelection, ViewSpec
from serving.stores import postgres as pg_reader
from serving.stores import redis as redis_reader
from serving.stores.base import MISSING, Breaker, StoreUnavailable, view_status
from streamflow.engines.postgres_months import newest_per_user
from streamflow.online import layout, redis_wire
from streamflow.online.postgres_guard import guarded_upsert

MONTH = datetime(2024, 1, 31, tzinfo=UTC)
USER = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)


def view(name="subs_profile_fv", **types) -> FeatureView:
    source = PostgreSQLSource(name=name, table=f"features.{name}", timestamp_field="feature_timestamp")
    fields = [Field(name=n, dtype=t) for n, t in (types or {"months_active": Int64, "fee": Float64}).items()]
    return FeatureView(name=name, entities=[USER], schema=fields, source=source, ttl=timedelta(days=45))


def test_typed_features_in_order_and_unsupported_types_refused():
    typed = layout.typed_features(view(a=Int64, b=Bool, c=String, d=Float64))
    assert [(n, pg) for n, pg, _ in typed] == [
        ("a", "bigint"),
        ("b", "boolean"),
        ("c", "text"),
        ("d", "double precision"),
    ]
    with pytest.raises(layout.UnsupportedFeature, match="stamp"):
        layout.typed_features(view(stamp=UnixTimestamp))


def test_column_names_and_the_identifier_limit():
    assert layout.column("usage_fv", "event_ts") == "usage_fv__event_ts"
    assert [c for c, _ in layout.view_columns(view())][:3] == [
        "subs_profile_fv__event_ts",
        "subs_profile_fv__created_ts",
        "subs_profile_fv__months_active",
    ]
    with pytest.raises(layout.UnsupportedFeature, match="longer than 63"):
        layout.column("v" * 40, "f" * 30)


def test_keys_fields_and_the_field_changes_with_the_features():
    assert redis_wire.user_key("streamflow", "7590-VHVEG") == b"streamflow:user:7590-VHVEG"
    assert redis_wire.user_key("p", "u").startswith(redis_wire.key_prefix("p"))
    same, renamed = layout.field_of(view()), layout.field_of(view(months=Int64, fee=Float64))
    assert same.startswith("subs_profile_fv@") and same == layout.field_of(view())
    assert renamed != same


def test_blob_round_trip_keeps_types_and_the_event_time():
    blob = layout.encode(MONTH, [12, 29.85, True, None, "two year"])
    stamp, *values = layout.decode(blob)
    assert layout.from_micros(stamp) == MONTH
    assert values == [12, 29.85, True, None, "two year"]
    assert blob.startswith(b"[%d," % layout.micros(MONTH))  # the Lua guard reads the time there


def test_months_log_entries_round_trip_and_newest_per_field():
    entry = layout.months_entry("usage_fv@0a1b2c3d", MONTH)
    assert layout.parse_months_entry(entry.encode()) == ("usage_fv@0a1b2c3d", MONTH)
    later = MONTH + timedelta(days=29)
    assert layout.newest_per_field([("a", MONTH), ("a", later), ("b", MONTH)]) == {"a": later, "b": MONTH}


def test_the_guarded_upsert_guards_each_group_by_its_own_event_time():
    groups = [["a__event_ts", "a__created_ts", "a__x"], ["b__event_ts", "b__created_ts", "b__y"]]
    text = guarded_upsert(sql.Identifier("t"), groups, sql.SQL("select 1")).as_string(None)
    assert 'on conflict ("user_id") do update' in text
    assert 'current."a__event_ts" < excluded."a__event_ts"' in text
    assert '"a__x" = case when' in text and '"b__y" = case when' in text
    assert "is distinct from" in text  # a restatement of the same month rewrites
    assert text.count(" or ") >= 3  # the row is rewritten only when some group is newer


def test_a_month_is_the_newest_row_per_user_of_every_view_merged_by_user():
    views = [view(), view("usage_fv", hours=Float64)]
    text = newest_per_user(views).as_string(None)
    assert text.count('distinct on ("user_id")') == 2
    assert "%(start)s" in text and "%(end)s" in text
    assert "full join" in text
    literal = newest_per_user(views, (sql.Literal(1), sql.Literal(2))).as_string(None)
    assert "%(start)s" not in literal and ">= 1 and" in literal


def test_the_write_script_is_called_with_its_fields_and_blobs():
    keys, args = redis_wire._call_args([(b"k1", [("f", b"[1,2]")]), (b"k2", [])], ttl=0)
    assert keys == [b"k1", b"k2"] and args == [0, 1, "f", b"[1,2]", 0]
    assert "old < new or (old == new and cur ~= blob)" in redis_wire.GUARDED_WRITE


# -- the API's side: selections and each reader's plan -------------------------------------------
def catalog() -> Catalog:
    views = {
        "subs": ViewSpec("subs", timedelta(days=45), ("months_active", "fee"), "subs@1"),
        "usage": ViewSpec("usage", None, ("hours",), "usage@1"),
    }
    return Catalog(views, {"api": (("subs", ("months_active", "fee")), ("usage", ("hours",)))}, "p")


def test_a_selection_is_resolved_once_and_unknowns_are_refused():
    cat = catalog()
    assert cat.select("api") is cat.select("api")
    custom = cat.select("api", ["hours", "fee", "hours"])
    assert custom.feature_names == ("hours", "fee")
    with pytest.raises(UnknownSelection, match="unknown feature"):
        cat.select("api", ["nope"])
    with pytest.raises(UnknownSelection, match="known: api"):
        cat.select("other")


def test_the_postgres_plan_reads_one_row_and_splits_it():
    selection = catalog().select("api")
    plan = pg_reader.Plan.of(selection, sql.Identifier("feast_online", "p_user_features"))
    assert b'where "user_id" = %s' in plan.single_sql and b"with ordinality" in plan.batch_sql
    now = MONTH + timedelta(days=1)
    row = (MONTH, 12, 29.85, None, None)
    vector = pg_reader._vector("u", plan, row, now)
    assert vector.found and vector.features == {"months_active": 12, "fee": 29.85, "hours": None}
    assert vector.views["subs"].status == "present" and vector.views["usage"] is MISSING
    assert not pg_reader._vector("u", plan, plan.empty_row, now).found


def test_the_redis_plan_reads_one_field_per_view_and_picks_the_values():
    selection = catalog().select("api", ["fee"])
    plan = redis_reader.Plan.of(selection)
    assert plan.fields == ("subs@1",)
    vector = redis_reader._vector("u", plan, [layout.encode(MONTH, [12, 29.85])], MONTH + timedelta(days=50))
    assert vector.features == {"fee": 29.85} and vector.views["subs"].status == "stale"


def test_status_is_stale_past_the_ttl_only():
    assert view_status(MONTH, timedelta(days=45), MONTH + timedelta(days=45)).status == "present"
    assert view_status(MONTH, timedelta(days=45), MONTH + timedelta(days=46)).status == "stale"
    assert view_status(MONTH, None, MONTH + timedelta(days=999)).status == "present"


def test_the_breaker_fails_fast_then_lets_one_probe_through():
    breaker = Breaker(retry_after=0.0)
    assert breaker.before() is False
    breaker.failed(probe=False)
    assert breaker.before() is True  # the probe
    with pytest.raises(StoreUnavailable):
        breaker.before()  # everyone else while the probe is out
    breaker.succeeded(probe=True)
    assert breaker.before() is False


def test_a_request_failing_on_its_own_never_leaves_the_breaker_probing():
    breaker = Breaker(retry_after=0.0)
    breaker.failed(probe=False)
    probe = breaker.before()
    breaker.answered(probe, ValueError("a bad value"))  # the store answered: it is up
    assert (breaker.open_until, breaker.probing) == (0.0, False)
    breaker.failed(probe=False)
    probe = breaker.before()
    breaker.answered(probe, asyncio.CancelledError())  # the client left before any answer
    assert breaker.probing is False and breaker.before() is True  # the next request probes again


def test_the_housekeeping_survives_an_unexpected_error():
    """A registry mid-change raises something unexpected: the next period tries again."""
    from serving import resources

    calls = []

    class Flaky:
        async def reload_if_applied(self):
            calls.append("reload")
            if len(calls) == 1:
                raise KeyError("a view half-applied")

        async def refresh_freshness(self):
            stop.set()  # the second period got this far: enough

        async def refresh_drift(self):
            pass

    async def run():
        await asyncio.wait_for(resources._housekeeping(Flaky(), stop), 5)

    stop = asyncio.Event()
    period, resources.HOUSEKEEPING_PERIOD_S = resources.HOUSEKEEPING_PERIOD_S, 0.01
    try:
        asyncio.run(run())
    finally:
        resources.HOUSEKEEPING_PERIOD_S = period
    assert calls == ["reload", "reload"]


def test_event_times_round_trip_to_the_microsecond():
    """Event times travel as whole microseconds (Redis blobs, Spark's unix_micros) and come back
    equal, not a float's neighbour."""
    for moment in (
        datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2262, 4, 11, 0, 0, 0, 1, tzinfo=UTC),
    ):
        assert layout.from_micros(layout.micros(moment)) == moment
