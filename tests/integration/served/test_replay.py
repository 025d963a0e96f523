"""Served versus offline, value by value (streamflow/served/): the API (in-process, as its
read-only role, every vector logged) serves, its spool files are collected into the engine once,
and the replay holds every served value to the offline tables at the time it was served. On the
module's stack nothing differs; each planted fault is found by the first replay after it, named
by view, feature and user; a restatement after serving is told apart from skew."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from feast import Field
from feast.types import String
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from serving.app import create_app
from serving.settings import ServingSettings
from streamflow import database, engines, targets
from streamflow.features.materialize import materialize
from streamflow.features.store import online_backend
from streamflow.online.layout import field_of
from streamflow.served import outcomes
from streamflow.served.collect import collect
from streamflow.served.replay import replay
from tests.support import query, with_feature

pytestmark = pytest.mark.slow
USERS = 40


@pytest.fixture(scope="module")
def users(store, fresh_db) -> list[str]:
    rows = query(fresh_db, "select distinct user_id from features.subs_profile order by 1 limit %s", (USERS,))
    return [u for (u,) in rows]


@pytest.fixture(scope="module")
def latest(fresh_db):
    return query(fresh_db, "select max(feature_timestamp) from features.usage_agg_30d")[0][0]


def serve(folder: Path, users: list[str], memory_mb: int = 0, reads: int = 1, **extra) -> None:
    """Every user read `reads` times (GET, then the same users in one POST), all logged; the API
    stopped after, so its spool files are closed."""
    settings = ServingSettings(
        database=targets.reader_target(), served_log_sample=1.0, served_log_dir=folder, cache_mb=memory_mb
    )
    with TestClient(create_app(settings)) as client:
        for _ in range(reads):
            for user in users:
                assert client.get(f"/features/{user}", params=extra).status_code == 200
            assert client.post("/features", json={"user_ids": users}).status_code == 200


def replayed_after(folder: Path) -> tuple[dict, list[tuple]]:
    landed = collect(folder)
    assert landed and not list(folder.glob("*.jsonl")), "every closed file landed, then removed"
    result = replay()
    return result.by_feature(), result.examples


def skewed(examples: list[tuple]) -> set[tuple[str, str, str]]:
    return {(view, feature, user) for view, feature, kind, user, *_ in examples if kind == outcomes.SKEW}


def test_the_stack_as_built_serves_what_the_offline_tables_hold(store, users, tmp_path):
    from prometheus_client import REGISTRY

    def logged() -> float:
        return REGISTRY.get_sample_value("streamflow_served_log_records_total", {"outcome": "logged"}) or 0

    before = logged()
    serve(tmp_path, users)
    assert logged() - before == 2 * USERS  # on /metrics
    by_feature, examples = replayed_after(tmp_path)
    assert len(by_feature) == 14, sorted(by_feature)  # the service's every feature
    totals = sum(by_feature.values(), Counter())
    assert set(totals) == {outcomes.EQUAL}, (totals, examples[:5])
    assert totals[outcomes.EQUAL] == 14 * 2 * USERS
    assert replay().rows == 0, "a row is replayed once"


def test_a_file_lands_once_however_often_it_is_collected(store, users, tmp_path):
    serve(tmp_path, users[:3])
    [path] = tmp_path.glob("*.jsonl")
    copy = path.read_bytes()
    assert sum(collect(tmp_path).values()) == 6
    path.write_bytes(copy)  # a collector stopped between landing it and removing it
    assert collect(tmp_path) == {path.name: 0} and not path.exists()
    replay()


def test_two_replays_at_once_count_every_row_once(store, users, tmp_path):
    """The flow's replay and the hourly one may meet: the second waits for the first's lock,
    then replays what is left (nothing, here), so every row is counted once."""
    serve(tmp_path, users[:5])
    assert sum(collect(tmp_path).values()) == 10
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: replay(), range(2)))
    assert sorted(r.rows for r in results) == [0, 10]
    counted = sum(sum(c.values()) for r in results for c in r.by_feature().values())
    assert counted == 14 * 10


def test_an_online_row_altered_in_the_store_is_skew(store, users, tmp_path):
    user = users[1]
    change = (
        "update feast_online.streamflow_user_features set usage_agg_30d_fv__watch_hours_30d ="
        " usage_agg_30d_fv__watch_hours_30d + %s where user_id = %s returning 1"
    )
    query(targets.admin_target(), change, (5.0, user))
    try:
        serve(tmp_path, users)
    finally:
        query(targets.admin_target(), change, (-5.0, user))
    by_feature, examples = replayed_after(tmp_path)
    assert skewed(examples) == {("usage_agg_30d_fv", "watch_hours_30d", user)}
    assert by_feature[("usage_agg_30d_fv", "watch_hours_30d")][outcomes.SKEW] == 2
    with TestClient(create_app(ServingSettings(database=targets.reader_target()))) as client:
        deadline = time.monotonic() + 15  # the API's housekeeping reads the replay's outcomes
        while not (ratios := skew_ratios(client)).get(("usage_agg_30d_fv", "watch_hours_30d")):
            assert time.monotonic() < deadline, ratios
            time.sleep(0.2)
    assert ratios[("usage_agg_30d_fv", "skips_7d")] == 0


def skew_ratios(client) -> dict[tuple[str, str], float]:
    """streamflow_skew_ratio on /metrics, by (view, feature)."""
    return {
        (sample.labels["feature_view"], sample.labels["feature"]): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        if family.name == "streamflow_skew_ratio"
        for sample in family.samples
    }


def test_a_month_restated_offline_and_not_materialized_is_skew(store, users, latest, tmp_path):
    user = users[2]
    change = (
        "update features.subs_profile set months_active = months_active + %s"
        " where user_id = %s and feature_timestamp = %s returning 1"
    )
    query(targets.admin_target(), change, (1000, user, latest))
    try:
        serve(tmp_path, users)
        _, examples = replayed_after(tmp_path)
    finally:
        query(targets.admin_target(), change, (-1000, user, latest))
    assert skewed(examples) == {("subs_profile_fv", "months_active", user)}


def test_a_restatement_after_serving_is_restated_not_skew(store, users, latest, tmp_path):
    user, admin = users[3], targets.admin_target()
    serve(tmp_path, users)
    collect(tmp_path)
    change = (
        "update features.subs_profile set months_active = months_active + %s"
        " where user_id = %s and feature_timestamp = %s returning 1"
    )
    stamp = "update raw.ingest_log set loaded_at = %s where as_of = %s::date returning 1"
    when = "select max(loaded_at) from raw.ingest_log where as_of = %s::date"
    [(loaded_at,)] = query(admin, when, [latest])
    query(admin, change, (1000, user, latest))
    try:  # the month's exports loaded again after serving, and its marts rebuilt
        query(admin, stamp, (datetime.now(UTC), latest))
        result = replay()
    finally:
        query(admin, change, (-1000, user, latest))
        query(admin, stamp, (loaded_at, latest))
    counts = result.by_feature()[("subs_profile_fv", "months_active")]
    assert counts[outcomes.RESTATED] == 2 and counts[outcomes.SKEW] == 0, counts


def rewrite_month(store, month) -> int:
    """The month into the online store as materialize writes it, its generation bumped and the
    month logged, in one transaction (without materialize's registry update, which the API
    notices within 30 s and reloads its catalog for: that would empty its memory by chance)."""
    views = sorted(store.list_feature_views(), key=lambda v: v.name)
    online = online_backend(store)
    with database.connect() as conn, conn.transaction():
        users = engines.current().materialize_month(online, conn, store.config, views, month)
        online.bump_generation(conn, store.config)
        online.record_months(conn, store.config, [field_of(v) for v in views], month)
    return users


def confirmed(memory, seconds: float = 10) -> None:
    """Until the worker's memory has confirmed the store's generation (it answers only then)."""
    deadline = time.monotonic() + seconds
    while not memory.confirmed():
        assert time.monotonic() < deadline, "the worker never confirmed the store's generation"
        time.sleep(0.02)


SWALLOW_BUMPS = (
    "create or replace function feast_online.no_bump() returns trigger language plpgsql"
    " as $$ begin return null; end $$;"
    " create trigger no_bump before update on feast_online.serving_generation"
    " for each row execute function feast_online.no_bump()"
)


def test_a_lost_generation_bump_leaves_memory_serving_old_values_as_skew(store, users, latest, tmp_path):
    """The month rewritten and logged, its generation bump silently lost (a trigger swallows it):
    the workers' memory goes on answering the old values, which the log marks as held."""
    user, admin = users[4], targets.admin_target()
    change = (
        "update features.usage_agg_30d set skips_7d = skips_7d + %s"
        " where user_id = %s and feature_timestamp = %s returning 1"
    )
    settings = ServingSettings(
        database=targets.reader_target(), served_log_sample=1.0, served_log_dir=tmp_path, cache_mb=64
    )
    started = datetime.now(UTC)
    try:
        with TestClient(create_app(settings)) as client:
            memory = client.app.state.resources.cached.cache
            confirmed(memory)  # a read before the first poll is not kept
            for _ in range(2):  # held from the second read
                assert client.get(f"/features/{user}").status_code == 200
            query(admin, change, (1000, user, latest))
            with psycopg.connect(admin.url, autocommit=True) as conn:
                conn.execute(SWALLOW_BUMPS)
            assert rewrite_month(store, latest) == 1
            hits, deadline = memory.hits, time.monotonic() + 15
            while memory.hits == hits and time.monotonic() < deadline:
                confirmed(memory)  # a busy machine may leave a poll late: a read then goes to the store
                assert client.get(f"/features/{user}").status_code == 200
            assert memory.hits > hits, "the worker's memory answered the held user"
        by_feature, _ = replayed_after(tmp_path)
        served = query(
            admin,
            "select __held, usage_agg_30d_fv__skips_7d from served.churn_api_v1"
            " where user_id = %s and __log_timestamp >= %s order by __row",
            [user, started],
        )
    finally:
        with psycopg.connect(admin.url, autocommit=True) as conn:
            conn.execute("drop trigger if exists no_bump on feast_online.serving_generation")
        query(admin, change, (-1000, user, latest))
        materialize(store, full=True)
    # Every value served as it was before the change is skew (the two reads before it, and the
    # memory's answers after it); a read sent to the store (the memory unconfirmed for a moment
    # on a busy machine, which also refreshes what it holds) is equal. With the bump delivered,
    # every read after the change would have come from the store: equal.
    before = served[0][1]
    assert any(held and value == before for held, value in served[2:]), served
    old = sum(1 for _, value in served if value == before)
    expected = Counter({outcomes.SKEW: old, outcomes.EQUAL: len(served) - old})
    assert by_feature[("usage_agg_30d_fv", "skips_7d")] == +expected, (by_feature, served)


def test_a_view_changed_by_apply_and_not_refilled_is_skew(store, users, latest, fresh_db, tmp_path):
    """`feast apply` adds a mart column to a view as a feature, and materialize is not run: the
    API serves it (the store has nothing of it yet) while the offline tables hold its values."""
    user, original = users[5], store.get_feature_view("subs_profile_fv")
    [(contract_type,)] = query(
        fresh_db,
        "select contract_type from features.subs_profile where user_id = %s and feature_timestamp = %s",
        (user, latest),
    )
    try:
        store.apply([with_feature(store, "subs_profile_fv", Field(name="contract_type", dtype=String))])
        serve(tmp_path, [user], features="contract_type,months_active")
        by_feature, examples = replayed_after(tmp_path)
    finally:
        store.apply([original])
        materialize(store)
    # the GET that named it (the POST asked for the service, which does not hold it)
    assert by_feature[("subs_profile_fv", "contract_type")] == Counter({outcomes.SKEW: 1}), by_feature
    assert by_feature[("subs_profile_fv", "months_active")] == Counter({outcomes.EQUAL: 2})
    [example] = [e for e in examples if e[1] == "contract_type"][:1]
    assert example[3] == user and example[-2:] == (None, contract_type)
