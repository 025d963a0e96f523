"""The API's view of the Feast registry and of `make monitor`'s results, both in PostgreSQL
whichever online store serves: the catalog (loaded through Feast), a cheap check that a `feast
apply` changed it, and the drift table. A small pool of its own, apart from the hot path's."""

from __future__ import annotations

import logging

import psycopg
from psycopg_pool import AsyncConnectionPool

from serving.catalog import Catalog
from serving.stores.pooled import PooledReads
from serving.stores.postgres import pool_kwargs
from streamflow.features.store import project_name, registry
from streamflow.targets import PgTarget

log = logging.getLogger("serving")
# A digest of every view's and service's definition: Feast stamps updates in whole seconds, so
# two applies within one second would leave a timestamp-based version unchanged.
REGISTRY_VERSION = (
    "select (select md5(coalesce(string_agg(feature_view_proto, ''::bytea order by feature_view_name), "
    "''::bytea)) from feast.feature_views), "
    "(select md5(coalesce(string_agg(feature_service_proto, ''::bytea order by feature_service_name), "
    "''::bytea)) from feast.feature_services)"
)
REGISTRY_PING = "select 1 from feast.projects limit 1"
DRIFT_TABLE_EXISTS = "select to_regclass('monitoring.feature_drift') is not null"
# Each feature's newest month against the baseline, as `make monitor` last left it.
LATEST_DRIFT = (
    "select feature_view, feature, js_distance, drift_threshold, watch_threshold "
    "from monitoring.feature_drift where as_of = (select max(as_of) from monitoring.feature_drift)"
)

SKEW_TABLE_EXISTS = "select to_regclass('monitoring.served_outcomes') is not null"
# Each feature's share of skewed values over the last day of served time the replay has checked.
LATEST_SKEW = (
    "select feature_view, feature, coalesce(sum(rows) filter (where outcome = 'skew'), 0)::float8"
    " / sum(rows) from monitoring.served_outcomes"
    " where hour > (select max(hour) from monitoring.served_outcomes) - interval '1 day' group by 1, 2"
)

JOB_TABLE_EXISTS = "select to_regclass('monitoring.job_runs') is not null"
# The last run (started), the last finished run, its steps, and the last success.
JOB_HEALTH = (
    "with last as (select * from monitoring.job_runs order by started_at desc limit 1),"
    " finished as (select * from monitoring.job_runs where ended_at is not null"
    "  order by started_at desc limit 1)"
    " select 'last', l.runner, extract(epoch from l.started_at)::float8, null::float8 from last l"
    " union all select 'finished', coalesce(f.failed_step, ''),"
    "  extract(epoch from f.ended_at - f.started_at)::float8, (f.outcome = 'failed')::int::float8"
    "  from finished f"
    " union all select 'success', '', extract(epoch from max(ended_at))::float8, null"
    "  from monitoring.job_runs where outcome = 'succeeded' having max(ended_at) is not null"
    " union all (select distinct on (s.step) 'step', s.step, s.seconds, null from monitoring.job_steps s"
    "  join finished f using (run_id) order by s.step, s.started_at desc)"
)


class Registry:
    def __init__(self, target: PgTarget, timeout_ms: int):
        self.target = target
        timeout = timeout_ms / 1000
        self.pool = AsyncConnectionPool(
            target.conninfo,
            min_size=1,
            max_size=2,
            open=False,
            timeout=timeout,
            reconnect_timeout=0,
            kwargs=pool_kwargs(target, timeout_ms, "streamflow-features-api-registry"),
        )
        self.reads = PooledReads(self.pool)  # a restart's dead connections: checked, read again
        self.timeout = timeout

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def fetch(self, statement: str) -> list[tuple]:
        return await self.reads.within(self.timeout, statement, "the feature registry")

    async def ping(self) -> None:
        await self.fetch(REGISTRY_PING)

    async def version(self) -> tuple:
        """Changes whenever `feast apply` changes a view or a service."""
        return tuple((await self.fetch(REGISTRY_VERSION))[0])

    def load_catalog(self) -> Catalog:
        """The catalog through Feast's registry (blocking: call it in a thread). Read once per
        change: the version check, not a refresh thread, says when to read it again."""
        return Catalog.from_registry(registry(self.target), project_name())

    async def latest_skew(self) -> list[tuple]:
        """(view, feature, share of skewed values) over the last day the replay checked; empty
        before the first `streamflow replay-served` or while the API's role may not read it."""
        return await self._monitoring(SKEW_TABLE_EXISTS, LATEST_SKEW, "served skew")

    async def job_health(self) -> list[tuple]:
        """(kind, label, value, flag) rows of the monthly job's health (JOB_HEALTH); empty before
        its first recorded run."""
        return await self._monitoring(JOB_TABLE_EXISTS, JOB_HEALTH, "job health")

    async def latest_drift(self) -> list[tuple]:
        """(view, feature, distance, drift threshold, watch threshold) of the newest month; empty
        before the first `make monitor` or while the API's role may not read the table yet."""
        return await self._monitoring(DRIFT_TABLE_EXISTS, LATEST_DRIFT, "feature drift")

    async def _monitoring(self, exists: str, statement: str, what: str) -> list[tuple]:
        try:
            if not (await self.fetch(exists))[0][0]:
                return []
            return await self.fetch(statement)
        except psycopg.ProgrammingError as exc:  # a grant not given yet: the gauges wait
            log.warning("%s unreadable: %s", what, exc.sqlstate)
            return []
