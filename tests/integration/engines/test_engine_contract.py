"""The offline engine contract (streamflow/engines/contract.py), one suite run against every
registered engine, as the online one is against every store. Each engine is set up by its own
module (`local_service`: a store set up nowhere else, never another engine's setup), its stack
built from the same generated exports by the monthly job as users run it (`streamflow pipeline`,
a process of its own), and its answers to the contract's questions (contract.py, asked in a
process of its own: a JVM-backed engine stays out of this one) held to the embedded default's,
PostgreSQL's, which are checked against its marts themselves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from streamflow import config, plugins, targets
from streamflow.features.store import feature_store
from streamflow.generate import generate
from streamflow.online.layout import view_columns
from tests.integration.engines.contract import MISSING_MART, ask
from tests.integration.spark.support import assert_same_cells
from tests.support import query, recreate_database, streamflow

# The other engines' stacks are built in their first test's time (Spark's: a JVM per step).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
REFERENCE = config.VARIABLES[config.OFFLINE_ENGINE].default  # the embedded default
ENGINES = list(plugins.OFFLINE_ENGINES)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("exports") / "seeds", users=300, months=2, seed=11)


Stack = tuple[targets.PgTarget, dict]  # an engine's database (logs, registry, online) and its answers


def _answers(name: str, server: targets.PgTarget, exports: Path, folder: Path) -> Stack:
    """Engine `name`'s stack of `exports` in a database of its own, and its answers."""
    target = recreate_database(server, f"sf_test_engine_{name}")
    with plugins.engine_module(name).local_service(folder) as variables:
        env = {**variables, config.DATABASE_URL: target.url}
        streamflow(["pipeline"], {**env, config.SEEDS_DIR: str(exports)})
        return target, ask(env)


@pytest.fixture(scope="module")
def reference(server, exports, tmp_path_factory) -> Stack:
    return _answers(REFERENCE, server, exports, tmp_path_factory.mktemp(REFERENCE))


@pytest.fixture(scope="module", params=ENGINES)
def answered(request, reference, server, exports, tmp_path_factory) -> dict:
    if request.param == REFERENCE:
        return reference[1]
    return _answers(request.param, server, exports, tmp_path_factory.mktemp(request.param))[1]


def test_every_engine_gives_the_references_answers(answered, reference):
    expected = reference[1]
    for question in ("missing", "mart_months", "event_timestamps", "month_columns", "labelled"):
        assert answered[question] == expected[question], question
    assert answered["generic_path_rewrote"] == expected["generic_path_rewrote"] == 0
    assert_same_cells(*(pd.DataFrame(a["month_rows"]) for a in (expected, answered)), "month_batches")


# -- the reference's answers, checked against its marts ------------------------------------------
def test_only_the_mart_dbt_never_built_is_missing(reference):
    assert reference[1]["missing"] == [MISSING_MART]


def test_every_mart_holds_the_loaded_months_at_their_midnights(reference):
    target, answered = reference
    loaded = [m.isoformat() for (m,) in query(target, "select distinct as_of from raw.ingest_log order by 1")]
    assert all(months == loaded for months in answered["mart_months"].values()), answered["mart_months"]
    assert answered["event_timestamps"] == [f"{m}T00:00:00+00:00" for m in loaded]


def test_a_month_is_one_newest_row_per_user_in_the_online_layout(reference):
    target, answered = reference
    with config.overridden({config.DATABASE_URL: target.url, config.OFFLINE_ENGINE: REFERENCE}):
        views = sorted(feature_store().list_feature_views(), key=lambda v: v.name)
    layout = ["user_id", *(name for view in views for name, _ in view_columns(view))]
    assert answered["month_columns"] == layout
    rows, last = answered["month_rows"], answered["event_timestamps"][-1][:10]
    users = [row["user_id"] for row in rows]
    expected = query(
        target,
        "select count(distinct user_id) from (select user_id from features.subs_profile where as_of = %s"
        " union select user_id from features.usage_agg_30d where as_of = %s) as u",
        (last, last),
    )[0][0]
    assert len(users) == len(set(users)) == expected
    [(user, months_active)] = query(
        target, "select user_id, months_active from features.subs_profile where as_of = %s limit 1", (last,)
    )
    [row] = [row for row in rows if row["user_id"] == user]
    assert row["subs_profile_fv__months_active"] == months_active
    assert row["subs_profile_fv__event_ts"] == f"{last}T00:00:00+00:00"


def test_the_labelled_entities_are_every_labelled_user_of_each_month(reference):
    target, answered = reference
    counts = query(target, "select as_of, count(*) from features.churn_labels group by 1 order by 1")
    assert answered["labelled"] == {m.isoformat(): n for m, n in counts}
