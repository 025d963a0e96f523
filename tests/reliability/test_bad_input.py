"""Bad input, nothing lost: broken months against a full stack, hostile ids, and property-based
fuzzing of the API from its own OpenAPI schema."""

from __future__ import annotations

import shutil
from collections import Counter

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from streamflow import ingest
from tests.bad_exports import BAD_MONTHS, rewrite
from tests.support import api_server, table_checksums

pytestmark = pytest.mark.slow

HOSTILE_IDS = [
    "1' OR '1'='1",
    "x'; DROP TABLE feast_online.streamflow_user_features; --",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "A" * 10_000,
    "ユーザー",
    "émile",
    "user id",
    "a%20b",
    "$(reboot)",
    "<script>alert(1)</script>",
]


@pytest.fixture(scope="module")
def base(stack):
    with api_server(stack.target.url) as url:
        yield url


@pytest.mark.parametrize("case", sorted(BAD_MONTHS))
def test_broken_month_changes_no_raw_feature_or_online_table(stack, seeds, tmp_path, case):
    file_name, transform, fragments = BAD_MONTHS[case]
    month_dir, as_of = ingest.month_dirs(seeds)[-1]
    bad = tmp_path / month_dir.name
    shutil.copytree(month_dir, bad)
    rewrite(bad / file_name, transform)
    before = table_checksums(stack.target, ("raw", "features", "feast_online"))
    with pytest.raises(ingest.IngestError) as failure:
        ingest.load_month(bad, as_of)
    assert all(fragment in str(failure.value) for fragment in fragments), str(failure.value)
    assert table_checksums(stack.target, ("raw", "features", "feast_online")) == before


@pytest.mark.parametrize("user_id", HOSTILE_IDS)
def test_hostile_ids_get_a_4xx_problem_and_touch_nothing(stack, base, user_id):
    before = table_checksums(stack.target, ("feast_online",))
    response = httpx.get(f"{base}/features/{user_id}")
    assert 400 <= response.status_code < 500, (user_id, response.status_code)
    if response.status_code != 404 or response.headers.get("content-type", "").startswith("application/"):
        assert response.json()["status"] == response.status_code
    batch = httpx.post(f"{base}/features", json={"user_ids": [user_id]})
    assert batch.status_code == 400
    assert "Traceback" not in response.text + batch.text
    assert table_checksums(stack.target, ("feast_online",)) == before


def test_ids_that_pass_validation_are_parameterised(stack, base):
    # Valid-looking ids that would be SQL if pasted into a query: they are just unknown users.
    for user_id in ["1-OR-1", "select", "null", "0--", "DROP_TABLE"]:
        assert httpx.get(f"{base}/features/{user_id}").status_code == 404
    with psycopg.connect(stack.target.url) as conn:
        assert conn.execute("select count(*) from feast_online.streamflow_user_features").fetchone()[0] > 0


def test_fuzz_the_api_from_its_openapi_schema(base):
    """Hypothesis draws requests for every operation from the served OpenAPI schema."""
    schema = schemathesis.openapi.from_url(f"{base}/schema/openapi.json")
    seen: Counter = Counter()

    @given(case=schema.as_strategy())
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        response = case.call(timeout=10)
        seen[(case.method, case.path, response.status_code)] += 1
        assert response.status_code < 500, (case.path, case.path_parameters, response.text[:300])
        if response.status_code >= 400:
            assert "json" in response.headers.get("content-type", [""])[0]
            assert response.json()["status"] == response.status_code
            assert "Traceback" not in response.text
        # Names of services and features are data (the registry's), not schema: a schema-valid
        # unknown name is a documented 400, so "positive data must be accepted" does not apply.
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    fuzz()
    print(f"\nfuzzed: {dict(seen)}")
    assert {path for _, path, _ in seen} >= {"/features/{user_id}", "/features", "/health", "/ready"}
