"""The features API against the real stack (Litestar's test client, real PostgreSQL, real Feast)."""

from __future__ import annotations

import asyncio
import math
import time

import psycopg
import pytest
from litestar.testing import TestClient

from serving.app import create_app
from serving.settings import ServingSettings
from streamflow import targets
from tests.support import query

pytestmark = pytest.mark.slow
COURSE_ORDER = [
    "months_active", "monthly_fee", "paperless_billing", "plan_stream_tv", "plan_stream_movies",
    "net_service", "watch_hours_30d", "avg_session_mins_7d", "unique_devices_30d", "skips_7d",
    "rebuffer_events_7d", "failed_payments_90d", "support_tickets_90d", "ticket_avg_resolution_hrs_90d",
]  # fmt: skip


@pytest.fixture(scope="module")
def users(fresh_db, store) -> list[str]:
    return [r[0] for r in query(fresh_db, "select distinct user_id from features.subs_profile order by 1")]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    return a == b and type(a) is type(b)


def test_get_features_shape_types_and_order(client, users):
    response = client.get(f"/features/{users[0]}")
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == users[0]
    assert body["feature_service"] == "churn_api_v1"
    assert list(body["features"]) == COURSE_ORDER, "documented, stable order"
    assert isinstance(body["features"]["months_active"], int)
    assert isinstance(body["features"]["monthly_fee"], float)
    assert isinstance(body["features"]["paperless_billing"], bool)
    assert isinstance(body["features"]["net_service"], str)
    views = body["feature_views"]
    assert set(views) == {"subs_profile_fv", "usage_agg_30d_fv", "payments_agg_90d_fv", "support_agg_90d_fv"}
    for view in views.values():
        assert view["event_timestamp"].endswith("Z")
        assert view["status"] == "stale", "2024 snapshots are past their 45-day TTL today"


def test_every_user_matches_feast_get_online_features(client, store, users):
    service = store.get_feature_service("churn_api_v1")
    compared = 0
    for start in range(0, len(users), 1000):
        chunk = users[start : start + 1000]
        expected = store.get_online_features(
            features=service, entity_rows=[{"user_id": u} for u in chunk]
        ).to_dict()
        response = client.post("/features", json={"user_ids": chunk})
        assert response.status_code == 200
        results = response.json()["results"]
        assert [r["user_id"] for r in results] == chunk
        for i, result in enumerate(results):
            assert result["found"] is True
            for name, value in result["features"].items():
                assert _same(value, expected[name][i]), (result["user_id"], name, value, expected[name][i])
                compared += 1
    assert compared == len(users) * 14
    # and the single-user route, on a spread of users
    for user_id in users[:: max(1, len(users) // 150)]:
        single = client.get(f"/features/{user_id}").json()["features"]
        batch = client.post("/features", json={"user_ids": [user_id]}).json()["results"][0]["features"]
        assert single == batch


def test_unknown_user_is_a_404_problem(client):
    response = client.get("/features/0000-NOBODY")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "0000-NOBODY" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/features/" + "A" * 65,
        "/features/a%27%3B%20drop%20table%20x",
        "/features/..%2F..%2Fetc%2Fpasswd",
        "/features/%C3%A9l%C3%A8ve",
        "/features/a b",
    ],
)
def test_malformed_ids_are_4xx_problems(client, path):
    response = client.get(path)
    assert 400 <= response.status_code < 500
    body = response.json()
    assert body["status"] == response.status_code
    assert "Traceback" not in response.text


def test_batch_errors_and_unknown_users(client, users):
    response = client.post("/features", json={"user_ids": [users[1], "0000-NOBODY", users[0]]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["user_id"], r["found"]) for r in results] == [
        (users[1], True),
        ("0000-NOBODY", False),
        (users[0], True),
    ]
    assert all(v is None for v in results[1]["features"].values())
    assert client.post("/features", json={"user_ids": ["x"] * 1001}).status_code == 413
    assert client.post("/features", json={"user_ids": ["bad id!"]}).status_code == 400
    assert client.post("/features", json={"users": ["x"]}).status_code == 400
    assert client.post("/features", json={"user_ids": []}).json()["results"] == []


def test_feature_selection_and_unknown_names(client, users):
    body = client.get(f"/features/{users[0]}?features=watch_hours_30d_mom_change,months_active").json()
    assert list(body["features"]) == ["watch_hours_30d_mom_change", "months_active"]
    full = client.get(f"/features/{users[0]}?feature_service=churn_model_v1").json()
    assert len(full["features"]) == 16 and "usage_trends_fv" in full["feature_views"]
    bad_feature = client.get(f"/features/{users[0]}?features=nope")
    assert bad_feature.status_code == 400 and "nope" in bad_feature.json()["detail"]
    bad_service = client.post("/features", json={"user_ids": [users[0]], "feature_service": "nope"})
    assert bad_service.status_code == 400


def test_ops_routes(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    before = client.get("/metrics").text
    client.get("/features/0000-NOBODY")
    metrics = client.get("/metrics").text
    line = 'streamflow_requests_total{method="GET",route="/features/{user_id}",status="404"}'
    count = {m.split(" ")[0]: float(m.split(" ")[1]) for m in metrics.splitlines() if m.startswith(line)}
    previous = [float(m.split(" ")[1]) for m in before.splitlines() if m.startswith(line)]
    assert count[line] == (previous[0] if previous else 0) + 1
    assert (
        'streamflow_request_duration_seconds_bucket{le="+Inf",method="GET",route="/features/{user_id}"}'
        in metrics
    )
    assert "streamflow_feature_view_latest_event_timestamp_seconds" in metrics
    assert "\nstreamflow_ready 1.0\n" in metrics
    schema = client.get("/schema/openapi.json").json()
    assert "/features/{user_id}" in schema["paths"]
    assert client.get("/schema/swagger").status_code == 200


def test_bearer_token_when_configured(store, users):
    app = create_app(ServingSettings(database=targets.reader_target(), api_token="s3cret-token"))
    with TestClient(app) as client:
        assert client.get(f"/features/{users[0]}").status_code == 401
        assert (
            client.get(f"/features/{users[0]}", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        ok = client.get(f"/features/{users[0]}", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200
        assert client.get("/health").status_code == 200


def test_serving_role_can_only_read(store):
    reader = targets.reader_target()
    with psycopg.connect(reader.url, autocommit=True) as conn:
        assert conn.execute("select count(*) from feast_online.streamflow_user_features").fetchone()[0] > 0
        assert conn.execute("select count(*) from feast.feature_views").fetchone()[0] == 5
        for statement in (
            "insert into feast_online.streamflow_user_features (user_id) values ('intruder')",
            "delete from feast_online.streamflow_user_features",
            "drop table feast_online.streamflow_user_features",
            "select count(*) from raw.users",
            "create table feast_online.evil (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_a_request_failing_on_its_own_never_wedges_the_breaker(client, fresh_db, users):
    """The probe after a blip fails for a reason of its own (a column gone, as after a `feast
    apply` that dropped it): the breaker must not stay probing, or every read is 503 for good."""
    breaker = client.app.state.resources.reader.breaker
    breaker.retry_after = 0.0
    rename = "alter table feast_online.streamflow_user_features rename column {} to {}"
    column, hidden = "subs_profile_fv__monthly_fee", "subs_profile_fv__monthly_fee_gone"
    breaker.failed(probe=False)  # as after a database blip: the next request is the probe
    with psycopg.connect(fresh_db.url, autocommit=True) as conn:
        conn.execute(rename.format(column, hidden))
        try:
            # the housekeeping may take the probe first (others then get a fast 503 meanwhile)
            for _ in range(100):
                broken = client.get(f"/features/{users[0]}")
                if broken.status_code != 503:
                    break
                time.sleep(0.02)
            assert broken.status_code == 500 and "Traceback" not in broken.text
        finally:
            conn.execute(rename.format(hidden, column))
    assert breaker.probing is False and breaker.open_until == 0.0
    assert client.get(f"/features/{users[0]}").status_code == 200


@pytest.mark.parametrize("user_id", ["\u0000", "1' OR '1'='1", "", "A" * 65])
def test_feast_protocol_ids_follow_the_id_rule(client, user_id):
    breaker = client.app.state.resources.reader.breaker
    response = client.post(
        "/get-online-features", json={"feature_service": "churn_api_v1", "entities": {"user_id": [user_id]}}
    )
    assert response.status_code == 400 and response.json()["status"] == 400
    assert breaker.open_until == 0.0 and breaker.probing is False


def test_every_connection_busy_is_a_busy_503_never_an_outage(store, users):
    """Overload on PostgreSQL: the pool's only connection held past the deadline gives StoreBusy
    (503 "busy") for that request, and the breaker stays closed; the next read is served."""
    from serving.catalog import Catalog
    from serving.stores.base import StoreBusy
    from serving.stores.postgres import PostgresReader
    from streamflow.features.store import repo_config
    from streamflow.online.postgres import table_identifier

    selection = Catalog.from_registry(store.registry, store.project).select("churn_api_v1")
    table = table_identifier(repo_config())

    async def scenario():
        reader = PostgresReader(targets.reader_target(), table, store.project, pool_size=1, timeout_ms=200)
        await reader.open()
        try:
            async with reader.pool.connection():  # every connection busy
                with pytest.raises(StoreBusy, match="busy"):
                    await reader.one(users[0], selection)
            assert reader.breaker.open_until == 0.0 and reader.breaker.probing is False
            return await reader.one(users[0], selection)
        finally:
            await reader.close()

    assert asyncio.run(scenario()).found


def test_the_freshness_gauges_never_wait_on_the_served_table_nor_open_the_breaker(store, fresh_db):
    """Housekeeping reads the months log: with the served table locked (a migration, a huge
    scan), the newest month of every view still comes, on time, and requests' breaker stays shut."""
    from serving.registry import Registry
    from serving.stores import open_reader

    config = ServingSettings(database=targets.reader_target(), db_timeout_ms=1000)
    catalog = Registry(config.database, config.db_timeout_ms).load_catalog()
    [(newest,)] = query(fresh_db, "select max(feature_timestamp) from features.subs_profile")

    async def scenario():
        reader = open_reader(config)
        await reader.open()
        try:
            return await reader.newest_events(catalog), reader.breaker.open_until
        finally:
            await reader.close()

    with psycopg.connect(fresh_db.url) as locker:  # held until the block ends (one transaction)
        locker.execute("lock table feast_online.streamflow_user_features in access exclusive mode")
        found, breaker_open_until = asyncio.run(scenario())
    assert found == dict.fromkeys(catalog.views, newest)
    assert breaker_open_until == 0
