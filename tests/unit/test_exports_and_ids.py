"""Rules that need no server: a bad export is refused from the files alone (naming file, line and
column), month folders map to month ends, hostile user ids fail the id rule, Redis URLs parse."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime

import pytest

from serving.schemas import USER_ID_PATTERN
from streamflow import ingest
from streamflow.exports import last_loaded, months_read
from streamflow.generate import generate
from streamflow.ingest.validate import check_month
from streamflow.online import redis_target
from tests.bad_exports import BAD_MONTHS, rewrite

HOSTILE_IDS = [
    "1' OR '1'='1",
    "x'; DROP TABLE feast_online.streamflow_user_features; --",
    "../../etc/passwd",
    "%00",
    "\x00",
    "A" * 65,
    "ユーザー",
    "émile",
    "user id",
    "$(reboot)",
    "<script>alert(1)</script>",
    "",
]


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("exports"), users=300, months=2, seed=3) / "month_000"


@pytest.mark.parametrize("case", sorted(BAD_MONTHS))
def test_a_bad_export_is_refused_before_anything_is_written(month, tmp_path, case):
    file_name, transform, fragments = BAD_MONTHS[case]
    bad = tmp_path / "month_000"
    shutil.copytree(month, bad)
    rewrite(bad / file_name, transform)
    with pytest.raises(ingest.IngestError) as refused:
        check_month(bad)
    for fragment in fragments:
        assert fragment in str(refused.value), (fragment, str(refused.value))


def test_a_good_export_passes(month):
    assert len(check_month(month)) == 6


def test_month_folders_map_to_month_ends(month):
    months = ingest.month_dirs(month.parent)
    assert [as_of for _, as_of in months] == [date(2024, 1, 31), date(2024, 2, 29)]


def test_a_months_marts_read_its_export_and_the_month_befores():
    assert months_read(date(2024, 3, 31)) == (date(2024, 3, 31), date(2024, 2, 29))
    assert months_read(date(2024, 1, 31)) == (date(2024, 1, 31), date(2023, 12, 31))
    jan, feb, mar = (datetime(2024, m, 5, tzinfo=UTC) for m in (1, 2, 3))
    loaded = {date(2024, 1, 31): jan, date(2024, 2, 29): mar, date(2024, 3, 31): feb}
    assert last_loaded(loaded, date(2024, 3, 31)) == mar  # February restated after March's load
    assert last_loaded(loaded, date(2024, 1, 31)) == jan
    assert last_loaded({}, date(2024, 1, 31)) is None


@pytest.mark.parametrize("user_id", HOSTILE_IDS)
def test_hostile_ids_fail_the_id_rule(user_id):
    assert re.fullmatch(USER_ID_PATTERN.strip("^$"), user_id) is None


@pytest.mark.parametrize("user_id", ["7590-VHVEG", "0000-NOBODY", "a_b", "9" * 64])
def test_real_ids_pass_the_id_rule(user_id):
    assert re.fullmatch(USER_ID_PATTERN.strip("^$"), user_id)


def test_redis_settings_are_parsed_and_refused_clearly():
    target = redis_target.parse("redis://:s3cret@10.0.0.1:7001,redis://:s3cret@10.0.0.2:7002", cluster=True)
    assert target.nodes == (("10.0.0.1", 7001), ("10.0.0.2", 7002)) and target.password == "s3cret"
    assert "s3cret" not in repr(target) and "s3cret" not in target.safe_url
    assert redis_target.parse("rediss://cache.example.com:6380/2", cluster=False).tls
    for urls, cluster, message in [
        ("redis://a:1,redis://b:2", False, "REDIS_CLUSTER=1"),
        ("http://a:1", False, "expected redis://host:port"),
        ("redis://a:1/3", True, "database 0 only"),
        ("redis://:x@a:1,redis://:y@b:2", True, "share one scheme"),
    ]:
        with pytest.raises(redis_target.RedisConfigError, match=message):
            redis_target.parse(urls, cluster)
