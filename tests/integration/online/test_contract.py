"""The online-store contract (streamflow/online/contract.py), one suite run against every store:
PostgreSQL and a 3-master Redis Cluster, on the same stack. What a user of either sees through
the API and Feast's SDK must be the same: the guard, restatements, unchanged rows not rewritten,
the months log, the statuses, 404 for an unknown user, 503 when the store does not answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from feast import FeatureStore, Field
from feast.types import String
from litestar.testing import TestClient

from serving.app import create_app
from serving.catalog import Catalog
from serving.settings import ServingSettings
from serving.stores import open_reader
from serving.stores.base import StoreUnavailable
from streamflow import config, database, engines, plugins, targets
from streamflow.engines.contract import OfflineEngine
from streamflow.features.materialize import materialize
from streamflow.features.store import online_backend
from streamflow.online.layout import MONTH_WINDOW, field_of
from streamflow.processes import free_port
from tests.support import local_store, query, with_feature

pytestmark = pytest.mark.slow
STORES = list(plugins.ONLINE_STORES)  # every registered store, each set up by its own module


@dataclass
class Case:
    name: str
    store: FeatureStore

    @property
    def settings(self) -> ServingSettings:
        return ServingSettings(database=targets.reader_target(), online_store=self.name)

    def window(self, month: datetime, path=None) -> int:
        """One month of every view through the store's window load (`path`: how a month reaches
        it; the engine's own by default); the users it wrote."""
        views = sorted(self.store.list_feature_views(), key=lambda v: v.name)
        path = path or engines.current().materialize_month
        with database.connect() as conn:
            return path(online_backend(self.store), conn, self.store.config, views, month)


@pytest.fixture(scope="module", params=STORES)
def online(request, store, tmp_path_factory):
    """The module's stack in each store, set up by the store's own module (tests/support.py's
    `local_store`), then materialized into it (PostgreSQL's: the months `store` already wrote)."""
    from streamflow.features.store import feature_store

    with local_store(request.param, tmp_path_factory.mktemp(request.param)):
        case_store = feature_store()
        assert case_store.config.online_store.type == plugins.store_module(request.param).FEAST_TYPE
        materialize(case_store)
        yield Case(request.param, case_store)


@pytest.fixture(scope="module")
def months(fresh_db) -> list[datetime]:
    return [
        r[0]
        for r in query(fresh_db, "select distinct feature_timestamp from features.subs_profile order by 1")
    ]


@pytest.fixture(scope="module")
def user(fresh_db) -> str:
    return query(fresh_db, "select min(user_id) from features.subs_profile")[0][0]


def vectors(case: Case, users: list[str]) -> list[dict]:
    with TestClient(create_app(case.settings)) as client:
        body = client.post("/features", json={"user_ids": users}).json()
    return body["results"]


def test_every_view_serves_its_newest_month_with_its_status(online, months, user):
    [vector] = vectors(online, [user])
    assert vector["found"] is True and len(vector["features"]) == 14
    now = datetime.now(UTC)
    for name, view in vector["feature_views"].items():
        ttl = online.store.get_feature_view(name).ttl
        stamp = datetime.fromisoformat(view["event_timestamp"])
        assert stamp == months[-1]
        assert view["status"] == ("stale" if now - stamp > ttl else "present")


def test_an_older_month_never_overwrites_a_newer_one(online, months, user):
    before = vectors(online, [user])
    assert online.window(months[0]) == 0  # our window load: nothing older replaces newer
    online.store.materialize(  # Feast's own path (online_write_batch)
        start_date=months[0], end_date=months[0] + MONTH_WINDOW, feature_views=["subs_profile_fv"]
    )
    assert vectors(online, [user]) == before


def test_unchanged_rows_are_not_rewritten(online):
    assert materialize(online.store) == {}  # every month is held: nothing to do
    written = materialize(online.store, full=True)
    assert written and set(written.values()) == {0}


def test_a_restated_month_replaces_its_values(online, fresh_db, months, user):
    latest = months[-1]
    [before] = vectors(online, [user])
    change = (
        "update features.subs_profile set months_active = months_active + %s "
        "where user_id = %s and feature_timestamp = %s"
    )
    try:
        query(fresh_db, change + " returning 1", (1000, user, latest))
        assert online.window(latest) == 1  # the same month with other values: only that user
        [after] = vectors(online, [user])
        assert after["features"]["months_active"] == before["features"]["months_active"] + 1000
    finally:
        query(fresh_db, change + " returning 1", (-1000, user, latest))
        online.window(latest)
    assert vectors(online, [user]) == [before]


def test_the_generic_month_path_keeps_the_guard_and_writes_only_what_changed(online, fresh_db, months, user):
    """A month through the engine's `month_batches` and the store's MonthWriter (the way any
    engine reaches any store) keeps the promises of the in-database path, value for value."""
    engine = engines.current()

    def generic(*args):
        return OfflineEngine.materialize_month(engine, *args)

    [before] = vectors(online, [user])
    assert online.window(months[0], generic) == 0  # nothing older replaces newer
    assert online.window(months[-1], generic) == 0  # an unchanged month rewrites nothing
    change = (
        "update features.usage_agg_30d set skips_7d = skips_7d + %s "
        "where user_id = %s and feature_timestamp = %s"
    )
    try:
        query(fresh_db, change + " returning 1", (1000, user, months[-1]))
        assert online.window(months[-1], generic) == 1  # the restated user alone
        [after] = vectors(online, [user])
        assert after["features"]["skips_7d"] == before["features"]["skips_7d"] + 1000
        assert {k: v for k, v in after["features"].items() if k != "skips_7d"} == {
            k: v for k, v in before["features"].items() if k != "skips_7d"
        }
    finally:
        query(fresh_db, change + " returning 1", (-1000, user, months[-1]))
        online.window(months[-1], generic)
    assert vectors(online, [user]) == [before]


def test_the_months_log_holds_every_view_and_month(online, months):
    fields = {v.name: field_of(v) for v in online.store.list_feature_views()}
    with database.connect() as conn:
        log = online_backend(online.store).materialized_months(conn, online.store.config)
    held = {(field, month) for field, month in log}
    assert {(f, m) for v, f in fields.items() for m in months if v != "usage_trends_fv"} <= held
    assert {field for field, _ in held} == set(fields.values())


def test_a_view_changed_by_apply_is_refilled_by_the_next_materialize(online, fresh_db, months, user):
    """`feast apply` adds a mart column to a view as a feature: the next incremental materialize
    writes every month again, and the API serves the new feature with the mart's value, the view
    with its month and status (before: nothing to do; PostgreSQL served the feature null, Redis
    the whole view missing)."""
    store, original = online.store, online.store.get_feature_view("subs_profile_fv")
    [before] = vectors(online, [user])
    [(contract_type,)] = query(
        fresh_db,
        "select contract_type from features.subs_profile where user_id = %s and feature_timestamp = %s",
        (user, months[-1]),
    )
    try:
        store.apply([with_feature(store, "subs_profile_fv", Field(name="contract_type", dtype=String))])
        assert sorted(materialize(store)) == [m.date().isoformat() for m in months]
        with TestClient(create_app(online.settings)) as client:
            answer = client.get(f"/features/{user}", params={"features": "contract_type"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["features"] == {"contract_type": contract_type}
        served = answer.json()["feature_views"]["subs_profile_fv"]
        assert served == before["feature_views"]["subs_profile_fv"]  # its month, its status (the TTL's)
    finally:
        store.apply([original])
        materialize(store)
    assert vectors(online, [user]) == [before]


def test_an_unknown_user_is_a_404_and_not_found_in_a_batch(online, user):
    with TestClient(create_app(online.settings)) as client:
        missing = client.get("/features/0000-NOBODY")
        batch = client.post("/features", json={"user_ids": ["0000-NOBODY", user]}).json()
    assert missing.status_code == 404 and missing.json()["title"] == "Unknown user"
    assert [item["found"] for item in batch["results"]] == [False, True]


def test_a_store_that_does_not_answer_is_a_503_then_fails_fast(online, user):
    """The store's module says how to point a reader at a server of it that does not answer."""
    catalog = Catalog.from_registry(online.store.registry, online.store.project)
    selection = catalog.select("churn_api_v1")

    async def two_reads():
        dead = ServingSettings(database=targets.reader_target(), online_store=online.name, db_timeout_ms=500)
        reader = open_reader(dead)
        await reader.open()
        try:
            for _ in range(2):
                with pytest.raises(StoreUnavailable):
                    await reader.one(user, selection)
        finally:
            await reader.close()

    with config.overridden(plugins.store_module(online.name).unanswered(free_port())):
        started = asyncio.run(_timed(two_reads()))
    assert started < 5, "the second read failed fast (breaker open), the first within its deadline"


async def _timed(work) -> float:
    loop = asyncio.get_running_loop()
    began = loop.time()
    await work
    return loop.time() - began
