"""The whole stack on the real monthly exports (../shared/streamflow_seeds), end to end: their
blanks, types and users through ingest, dbt, Feast and the API. Every other test runs on
generated exports of the same shape; these are skipped, with the reason, where the real ones are
absent (a user's clone), and fail instead under STREAMFLOW_REAL_SEEDS_REQUIRED=1 (CI)."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from serving.app import create_app
from serving.settings import ServingSettings
from streamflow import targets
from tests.integration.feast.reference import (
    COURSE_FEATURES,
    assert_online_equals_offline,
    assert_point_in_time_correct,
)
from tests.support import build_stack

pytestmark = pytest.mark.slow
KNOWN = "7590-VHVEG"  # the first user of the real exports


@pytest.fixture(scope="module")
def real_store(fresh_db, real_exports):
    return build_stack(real_exports)


def test_point_in_time_correct_for_every_real_user_and_date(real_store, real_exports, tmp_path):
    assert_point_in_time_correct(real_store, real_exports, tmp_path)


def test_online_equals_offline_for_every_real_user(real_store):
    assert assert_online_equals_offline(real_store) == 7043


def test_a_real_user_is_served_and_an_unknown_one_is_a_404(real_store):
    with TestClient(create_app(ServingSettings(database=targets.reader_target()))) as client:
        body = client.get(f"/features/{KNOWN}").json()
        assert body["user_id"] == KNOWN
        assert set(body["features"]) == set(COURSE_FEATURES)  # the service's 14
        assert client.get("/features/0000-NOBODY").status_code == 404
