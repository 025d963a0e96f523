"""Materialize: the months of the feature marts the online store does not hold yet (new ones,
restated ones, ones of a view added or changed since), oldest first, in one transaction per month; refused
unless the last `dbt build` passed on the data the offline engine holds now. Each view's month is
recorded in the online store's months log, so the monthly run costs one month whatever the history."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from streamflow import control, engines, logs, progress
from streamflow.control import build_log, job_lock, locks
from streamflow.control.ingest_log import months_loaded_at
from streamflow.engines import StepRefused
from streamflow.exports import last_loaded
from streamflow.features.store import feature_store, online_backend
from streamflow.online.layout import MONTH_WINDOW, field_of

if TYPE_CHECKING:
    from feast import FeatureStore


# -- materialize -------------------------------------------------------------------------------
def materialize(store: FeatureStore | None = None, full: bool = False) -> dict[str, int]:
    """The months to do (`full`: every month of the marts) into the online store, oldest first;
    returns the users written per as_of (rows whose values did not change are not rewritten)."""
    engine = engines.current()
    engine.feast_ready()
    store = store or feature_store()
    views = sorted(store.list_feature_views(), key=lambda v: v.name)
    fields = [field_of(v) for v in views]  # each view under its layout in the months log
    if not views:
        raise StepRefused("no feature views registered: run `make apply` first")
    sources = [v.batch_source.get_table_query_string() for v in views]
    online = online_backend(store)
    loaded: dict[str, int] = {}
    # autocommit: each month below is its own explicit transaction, committed before the next
    with control.connect(autocommit=True) as conn, locks.materializing(conn):
        missing = engine.marts_missing(sources)
        if missing:
            raise StepRefused(f"feature marts missing ({', '.join(missing)}): run `make dbt-build` first")
        build_log.assert_built(conn)
        timestamps = engine.event_timestamps(views)
        if not timestamps:
            raise StepRefused("the feature marts are empty: ingest a month and run `make dbt-build`")
        done = online.materialized_months(conn, store.config)
        todo = timestamps if full else _months_to_do(done, months_loaded_at(conn), fields, timestamps)
        if not todo:
            print("the online store holds every month of the marts: nothing to materialize")
            return loaded
        with progress.task("materialize", total=len(todo), unit="months") as shown:
            for start in todo:  # oldest first; the store's guard keeps newer rows anyway
                started = time.perf_counter()
                # one month of every view in one transaction: on PostgreSQL it becomes visible at
                # once; Redis shows each batch as it lands, and logs the month after the last one
                with conn.transaction():
                    job_lock.fence(conn)  # a run that lost its lock writes no month
                    users = engine.materialize_month(online, conn, store.config, views, start)
                    # the API's caches drop the old, then the month counts as done: on Redis
                    # (no transaction) a failed bump leaves the month to do, and its retry bumps
                    online.bump_generation(conn, store.config)
                    online.record_months(conn, store.config, fields, start)
                loaded[start.date().isoformat()] = users
                shown.advance(users=users)
                seconds = time.perf_counter() - started
                logs.say(
                    f"materialized as_of {start.date()}: {users:,} users written x {len(views)} views "
                    f"in {seconds:.2f}s",
                    event="month_materialized",
                    as_of=start.date().isoformat(),
                    users=users,
                    views=len(views),
                    seconds=round(seconds, 3),
                )
        for view in views:
            store.registry.apply_materialization(view, store.project, todo[0], todo[-1] + MONTH_WINDOW)
        online.after_materialize(conn, store.config)
    return loaded


def _months_to_do(done: dict, loaded: dict, fields: list[str], timestamps: list[datetime]) -> list[datetime]:
    """Months some view has not materialized in its current layout (a view `feast apply` changed
    has a new field, layout.field_of), or whose marts' exports were loaded again since (the
    month's own, or the month before's: dbt rewrites the month after each it builds)."""

    def missing(field: str, month: datetime) -> bool:
        at = done.get((field, month))
        reloaded = last_loaded(loaded, month.astimezone(UTC).date())
        return at is None or (reloaded is not None and at < reloaded)

    return [month for month in timestamps if any(missing(field, month) for field in fields)]
