"""Replay: the served rows not checked yet, each held to the offline answer at the time it was
served, value by value (the rules: outcomes.py). Per feature service and view, one query on the
engine joins the landed rows to the view's mart at the newest month at or before each served
time (a CASE over the mart's months, then an equi-join: no correlated lookup per row); the bulk
of equal cells is found with Arrow's vectorized kernels, and only the rest is classified one by
one. The rows go in slices (SLICE_ROWS); beside the API, each slice waits for room on the
machine (streamflow/background.py). Outcomes per feature and hour, a few rows of each defect,
and how far each service was replayed are written in one transaction of the control plane:
every row is counted once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from streamflow import background, control, engines
from streamflow.control import locks
from streamflow.control.ingest_log import months_loaded_at
from streamflow.exports import last_loaded
from streamflow.features.store import feature_store, online_backend
from streamflow.online import layout
from streamflow.served import outcomes
from streamflow.served.outcomes import EQUAL, NOT_SERVED

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

    from streamflow.engines.contract import OfflineEngine

EXAMPLES_PER_FEATURE = 10
SLICE_ROWS = 250_000  # served rows a query holds to the marts: between two, a replay beside the API may wait
TABLES = (
    "create schema if not exists monitoring",
    "create table if not exists monitoring.served_outcomes (hour timestamptz not null,"
    " feature_view text not null, feature text not null, outcome text not null, rows bigint not null,"
    " primary key (hour, feature_view, feature, outcome))",
    "create table if not exists monitoring.served_examples (found_at timestamptz not null default now(),"
    " feature_view text not null, feature text not null, outcome text not null, user_id text not null,"
    " served_at timestamptz not null, served_month timestamptz, offline_month timestamptz,"
    " served_value text, offline_value text)",
    "create table if not exists monitoring.served_replay (service text primary key,"
    " last_row bigint not null, replayed_at timestamptz not null)",
)
ADD_OUTCOMES = (
    "insert into monitoring.served_outcomes as o values (%s, %s, %s, %s, %s)"
    " on conflict (hour, feature_view, feature, outcome) do update set rows = o.rows + excluded.rows"
)
EXAMPLE = (
    "insert into monitoring.served_examples (feature_view, feature, outcome, user_id, served_at,"
    " served_month, offline_month, served_value, offline_value) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
PROGRESS = (
    "insert into monitoring.served_replay values (%s, %s, now())"
    " on conflict (service) do update set last_row = excluded.last_row, replayed_at = excluded.replayed_at"
)


@dataclass
class Replayed:
    rows: int = 0  # served rows checked
    waited_s: float = 0.0  # for room on the machine, between slices (background.py)
    counts: Counter = field(default_factory=Counter)  # (view, feature, hour, outcome) -> cells
    examples: list[tuple] = field(default_factory=list)

    def by_feature(self) -> dict[tuple[str, str], Counter]:
        out: dict[tuple[str, str], Counter] = {}
        for (view, feature, _, outcome), n in self.counts.items():
            out.setdefault((view, feature), Counter())[outcome] += n
        return out

    def defects(self) -> int:
        return sum(n for (_, _, _, outcome), n in self.counts.items() if outcome == outcomes.SKEW)


def replay_sql(engine: OfflineEngine, table: str, view: FeatureView, features: list[str],
               months: list[datetime], lo: int, hi: int) -> str:  # fmt: skip
    """The served rows (lo, hi] of one view beside the mart's row at the newest month at or
    before each served time, in the engine's dialect. Only names of the registry's, and numbers
    and times of our own, are written into the text."""
    q, at = engine.quote, engine.timestamp_literal
    name, stamp = view.name, q(view.batch_source.timestamp_field)
    served = ", ".join(f"s.{q(f'{name}__{f}')}, s.{q(f'{name}__{f}__status')}" for f in features)
    stamps = ", ".join(f"s.{q(f'{name}__{f}__timestamp')}" for f in features)
    offline = ", ".join(f"m.{q(f)} as {q(f'offline__{f}')}" for f in features)
    cases = " ".join(f"when s.__log_timestamp >= {at(m)} then {at(m)}" for m in reversed(months))
    month = f"case {cases} end" if months else "null"
    return (
        f"select s.__row, s.user_id, s.__log_timestamp as served_at, s.__from_memory as from_memory,"
        f" coalesce({stamps}) as served_ts, {served},"
        f" m.{stamp} as offline_ts, {offline}"
        f" from {table} s left join {view.batch_source.get_table_query_string()} m"
        f" on m.user_id = s.user_id and m.{stamp} = ({month})"
        f" where s.__row > {int(lo)} and s.__row <= {int(hi)}"
    )


def _null_safe_equal(a: pa.Array, b: pa.Array, tolerance: bool) -> pa.Array:
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    if tolerance:
        bound = pc.multiply(pc.max_element_wise(pc.abs(a), pa.scalar(1.0)), outcomes.TOLERANCE)
        equal = pc.less_equal(pc.abs(pc.subtract(a, b)), bound)
    else:
        equal = pc.equal(a, b)
    return pc.or_(pc.fill_null(equal, False), both_null)


def _expected_status(batch: pa.RecordBatch, offline: pa.Array, ttl: timedelta | None) -> pa.Array:
    offline_ts = batch.column("offline_ts")
    if ttl is not None:
        age = pc.subtract(batch.column("served_at"), offline_ts)
        stale = pc.fill_null(pc.greater(age, pa.scalar(ttl, pa.duration("us"))), False)
    else:
        stale = pa.repeat(pa.scalar(False), len(batch))
    value = pc.if_else(pc.is_null(offline), outcomes.NULL_VALUE, outcomes.PRESENT)
    return pc.if_else(
        pc.is_null(offline_ts), outcomes.NOT_FOUND, pc.if_else(stale, outcomes.OUTSIDE_MAX_AGE, value)
    )


class Judge:
    """The months log and the ingest log, read once: what `outcome` needs beyond the two values."""

    def __init__(self, given: dict, loaded: dict):
        self.given: dict[tuple[str, datetime], datetime] = {}
        for (view_field, month), at in given.items():  # by view, whatever its layout
            key = (layout.view_of(view_field), month)
            self.given[key] = min(at, self.given.get(key, at))
        self.loaded = loaded

    def compare(self, batch: pa.RecordBatch, view: FeatureView, features: list[str], replayed: Replayed):
        ttl = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else None
        served_ts, offline_ts = batch.column("served_ts"), batch.column("offline_ts")
        same_month = _null_safe_equal(served_ts, offline_ts, tolerance=False)
        hours = pc.floor_temporal(batch.column("served_at"), unit="hour").to_pylist()
        for feature in features:
            served, offline = batch.column(f"{view.name}__{feature}"), batch.column(f"offline__{feature}")
            status = batch.column(f"{view.name}__{feature}__status")
            floats = pa.types.is_floating(served.type) or pa.types.is_floating(offline.type)
            equal = pc.and_(
                pc.and_(same_month, _null_safe_equal(served, offline, tolerance=floats)),
                pc.fill_null(pc.equal(status, _expected_status(batch, offline, ttl)), False),
            )
            served_status = pc.fill_null(status, NOT_SERVED)
            counted = pc.not_equal(served_status, NOT_SERVED)
            kept = pc.and_(counted, equal).to_pylist()
            for hour, n in Counter(h for h, k in zip(hours, kept, strict=True) if k).items():
                replayed.counts[(view.name, feature, hour, EQUAL)] += n
            others = pc.indices_nonzero(pc.and_(counted, pc.invert(equal))).to_pylist()
            for i in others:
                self._one(batch, view, feature, i, ttl, hours[i], replayed)

    def _one(self, batch, view, feature: str, i: int, ttl, hour, replayed: Replayed) -> None:
        names = ("user_id", "served_at", "from_memory", "served_ts", "offline_ts")
        row = {name: batch.column(name)[i].as_py() for name in names}
        served_value = batch.column(f"{view.name}__{feature}")[i].as_py()
        offline_value = batch.column(f"offline__{feature}")[i].as_py()
        month = row["offline_ts"]
        verdict = outcomes.outcome(
            served_at=row["served_at"],
            served_ts=row["served_ts"],
            served_value=served_value,
            served_status=batch.column(f"{view.name}__{feature}__status")[i].as_py(),
            offline_ts=month,
            offline_value=offline_value,
            ttl=ttl,
            from_memory=bool(row["from_memory"]),
            given_at=self.given.get((view.name, month)) if month is not None else None,
            reloaded_at=last_loaded(self.loaded, month.astimezone(UTC).date()) if month is not None else None,
        )
        replayed.counts[(view.name, feature, hour, verdict)] += 1
        shown = sum(1 for e in replayed.examples if e[:3] == (view.name, feature, verdict))
        if verdict != EQUAL and shown < EXAMPLES_PER_FEATURE:
            replayed.examples.append(
                (view.name, feature, verdict, row["user_id"], row["served_at"], row["served_ts"], month,
                 None if served_value is None else str(served_value),
                 None if offline_value is None else str(offline_value))
            )  # fmt: skip


def _replay_selection(engine, table: str, lo: int, views, judge: Judge, replayed: Replayed) -> int | None:
    """The rows of one selection's table after `lo`, in slices of SLICE_ROWS (each waiting for
    room on the machine when the replay runs beside the API: background.py); the last row
    replayed (None: none new)."""
    hi = engine.read_query(f"select coalesce(max(__row), 0) as hi from {table}").column("hi")[0].as_py()
    if hi <= lo:
        return None
    logged = set(engine.read_query(f"select * from {table} limit 0").column_names)
    # the service's views, and any other a request named features of
    served = [(v, [f.name for f in v.features if f"{v.name}__{f.name}" in logged]) for v in views]
    served = [(view, features) for view, features in served if features]
    months = {view.name: engine.event_timestamps([view]) for view, _ in served}
    for start in range(lo, hi, SLICE_ROWS):
        end = min(start + SLICE_ROWS, hi)
        replayed.waited_s += background.wait_for_room()
        for view, features in served:
            sql = replay_sql(engine, table, view, features, months[view.name], start, end)
            for batch in engine.stream_query(sql):
                judge.compare(batch, view, features, replayed)
    replayed.rows += hi - lo
    return hi


def replay(store: FeatureStore | None = None) -> Replayed:
    """Every served row not replayed yet, on the engine that built the marts; one replay at a
    time (a second waits, then replays what is left: no row is counted twice)."""
    engine = engines.current()
    store = store or feature_store()
    online = online_backend(store)
    replayed = Replayed()
    with control.connect() as conn:
        locks.hold_replay(conn)  # held until the connection closes, after the outcomes are written
        for statement in TABLES:
            conn.execute(statement)
        conn.commit()
        judge = Judge(online.materialized_months(conn, store.config), months_loaded_at(conn))
        done = dict(conn.execute("select service, last_row from monitoring.served_replay").fetchall())
        conn.commit()
        progress = {}
        views = sorted((v for v in store.list_feature_views() if v.online), key=lambda v: v.name)
        for service, table in engine.served_tables().items():
            hi = _replay_selection(engine, table, done.get(service, 0), views, judge, replayed)
            if hi is not None:
                progress[service] = hi
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(ADD_OUTCOMES, [(h, v, f, o, n) for (v, f, h, o), n in replayed.counts.items()])
            cursor.executemany(EXAMPLE, replayed.examples)
            cursor.executemany(PROGRESS, list(progress.items()))
    return replayed
