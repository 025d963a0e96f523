"""The online store on PostgreSQL: one typed row per user, a column group per feature view.

Feast's own Postgres store keeps one row per (entity, feature) holding a serialized protobuf, in
one table per view, and upserts without looking at timestamps. This one keeps one table
`<project>_user_features` (`online_table`; its columns, layout.py's):
- a read of any set of features is one primary-key lookup returning native PostgreSQL types, with
  no protobuf decoding and no join (the API serves a whole feature service from one row);
- every write is guarded per view (contract.py);
- on the PostgreSQL engine a month of every view goes straight from the marts with one
  set-based `INSERT ... SELECT` (`write_month_from`); from any other engine, through the
  staged month writer (postgres_staging.py).
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
from feast import FeatureView
from feast.infra.utils.postgres.connection_utils import _get_conn, _get_connection_pool
from feast.infra.utils.postgres.postgres_config import ConnectionType, PostgreSQLConfig
from feast.repo_config import RepoConfig
from feast.type_map import python_values_to_proto_values
from psycopg import Connection, sql
from psycopg_pool import ConnectionPool

from streamflow import config, targets
from streamflow.online import postgres_log
from streamflow.online.contract import OnlineStoreBackend, ReadResult, Row, StoreProblem, Views
from streamflow.online.feast_plugin import StreamflowOnlineStore
from streamflow.online.layout import (
    ENTITY_COLUMN,
    column,
    typed_features,
    view_columns,
)
from streamflow.online.postgres_guard import guarded_upsert, idents
from streamflow.online.postgres_staging import StagedMonth
from streamflow.targets import PgTarget

ONLINE_SCHEMA = "feast_online"
# The freshness gauges' source: a few rows, whatever the size of the served table. The log's
# `feature_view` holds the view's field (layout.field_of): its name and layout digest.
NEWEST_MONTHS = "select feature_view, max(event_timestamp) from feast_online.materialized_months group by 1"

# The generation the API's workers poll (serving/cache.py): one row per project, bumped in the
# transaction of every change of served values.
GENERATION_DDL = (
    "create table if not exists feast_online.serving_generation ("
    " project text primary key, generation bigint not null)"
)
BUMP_GENERATION = (
    "insert into feast_online.serving_generation as g values (%s, 1) "
    "on conflict (project) do update set generation = g.generation + 1"
)
READ_GENERATION = "select generation from feast_online.serving_generation where project = %s"


def table_of(project: str) -> sql.Identifier:
    """The project's served table (the months log and the generation sit beside it)."""
    return sql.Identifier(ONLINE_SCHEMA, online_table(project))


def online_table(project: str) -> str:
    """The served table: one row per user, a column group per view (layout.view_columns)."""
    return f"{project}_user_features"


def table_identifier(config: RepoConfig) -> sql.Identifier:
    return table_of(config.project)


def copy_text(value: Any) -> str:
    """One field in COPY text format."""
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class PostgresOnlineStore(OnlineStoreBackend):
    def __init__(self) -> None:
        self._pool: ConnectionPool | None = None
        self._conn: Connection | None = None
        self._singleton_lock = threading.Lock()

    @contextlib.contextmanager
    def _connection(self, config: RepoConfig) -> Iterator[Connection]:
        store_config = config.online_store
        if store_config.conn_type == ConnectionType.pool:
            if self._pool is None:
                self._pool = _get_connection_pool(store_config)
                self._pool.open()
            with self._pool.connection() as conn:
                yield conn
        else:
            # One connection shared by the SDK's threads (e.g. `feast serve`): one user at a time.
            with self._singleton_lock:
                if self._conn is None or self._conn.closed:
                    self._conn = _get_conn(store_config)
                with self._conn.transaction():
                    yield self._conn

    # -- schema -------------------------------------------------------------------------------
    def update(self, config: RepoConfig, to_delete: Sequence[FeatureView], to_keep: Sequence[FeatureView]):
        schema, table = config.online_store.db_schema, table_identifier(config)
        with self._connection(config) as conn:
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
            # fillfactor leaves room for HOT updates: each view rewrites its columns of a row
            conn.execute(
                sql.SQL("create table if not exists {} ({} text primary key) with (fillfactor = 70)").format(
                    table, sql.Identifier(ENTITY_COLUMN)
                )
            )
            existing = dict(
                conn.execute(
                    "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
                    "where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped",
                    (f'"{schema}"."{online_table(config.project)}"',),
                ).fetchall()
            )

            def drop_group(view_name: str) -> None:
                for name in [c for c in existing if c.startswith(f"{view_name}__")]:
                    conn.execute(sql.SQL("alter table {} drop column {}").format(table, sql.Identifier(name)))
                    existing.pop(name)

            for view in to_delete:
                drop_group(view.name)
            for view in to_keep:
                wanted = view_columns(view)
                if any(existing.get(name, pg) != pg for name, pg in wanted):
                    drop_group(view.name)  # a feature changed type; `make materialize` refills the group
                for name, pg in wanted:
                    if name not in existing:
                        conn.execute(
                            sql.SQL("alter table {} add column {} {}").format(
                                table, sql.Identifier(name), sql.SQL(pg)
                            )
                        )
            self.bump_generation(conn, config)

    def teardown(self, config: RepoConfig) -> None:
        with self._connection(config) as conn:
            conn.execute(sql.SQL("drop table if exists {}").format(table_identifier(config)))
            self.bump_generation(conn, config)

    # -- writes -------------------------------------------------------------------------------
    def write_rows(self, config: RepoConfig, view: FeatureView, rows: Iterable[Row]) -> None:
        """COPY into a temporary table, then the latest row per user through the guard."""
        typed = typed_features(view)
        buffer = io.StringIO()
        for user_id, event_ts, created_ts, values in rows:
            buffer.write("\t".join(copy_text(v) for v in (user_id, event_ts, created_ts, *values)) + "\n")
        staged = [ENTITY_COLUMN, "event_ts", "created_ts", *(f for f, _, _ in typed)]
        types = ["text", "timestamptz", "timestamptz", *(pg for _, pg, _ in typed)]
        with self._connection(config) as conn:
            conn.execute(
                sql.SQL("create temp table incoming ({}) on commit drop").format(
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
                        for n, t in zip(staged, types, strict=True)
                    )
                )
            )
            with conn.cursor().copy(sql.SQL("copy incoming ({}) from stdin").format(idents(staged))) as copy:
                copy.write(buffer.getvalue())
            latest = sql.SQL(
                "select distinct on ({key}) {cols} from incoming order by {key}, event_ts desc"
            ).format(key=sql.Identifier(ENTITY_COLUMN), cols=idents(staged))
            group = [name for name, _ in view_columns(view)]
            conn.execute(guarded_upsert(table_identifier(config), [group], latest))
            self.bump_generation(conn, config)

    def write_month_from(
        self, conn: Connection, config: RepoConfig, views: Views, month_rows: sql.Composable, params: dict
    ) -> int:
        """One upsert for the month: a user's row is written once, not once per view (5x fewer
        row versions); each view's column group keeps its own guard."""
        groups = [[name for name, _ in view_columns(view)] for view in views]
        return conn.execute(guarded_upsert(table_identifier(config), groups, month_rows), params).rowcount

    def month_writer(self, config: RepoConfig, views: Views) -> StagedMonth:
        groups = [view_columns(view) for view in views]
        return StagedMonth(
            url=targets.admin_target().url,
            schema=config.online_store.db_schema,
            online_table=table_identifier(config),
            columns=((ENTITY_COLUMN, "text"), *(column for group in groups for column in group)),
            groups=tuple(tuple(name for name, _ in group) for group in groups),
        )

    # -- the months log ---------------------------------------------------------------------------
    def materialized_months(
        self, conn: Connection, config: RepoConfig
    ) -> dict[tuple[str, datetime], datetime]:
        conn.execute(postgres_log.MONTHS_LOG_DDL)
        return postgres_log.months_log(conn, config.project)

    def record_months(self, conn: Connection, config: RepoConfig, fields: list[str], month: datetime) -> None:
        """Inside the month's transaction: the log commits with the rows."""
        conn.execute(postgres_log.RECORD_MONTH, {"views": fields, "month": month})

    def bump_generation(self, conn: Connection, config: RepoConfig) -> None:
        conn.execute(GENERATION_DDL)
        conn.execute(BUMP_GENERATION, (config.project,))

    def after_materialize(self, conn: Connection, config: RepoConfig) -> None:
        # Planner statistics for the rows just written; dead row versions are autovacuum's
        # (a month rewrites only the rows that changed, not the table).
        conn.execute(sql.SQL("analyze {}").format(table_identifier(config)))

    # -- reads (the Feast SDK path; the API reads the same row with a statement of its own) -----
    def read(
        self, config: RepoConfig, view: FeatureView, user_ids: list[str], requested: list[str] | None
    ) -> list[ReadResult]:
        features = typed_features(view)
        if requested:
            features = [f for f in features if f[0] in set(requested)]
        statement = sql.SQL("select {key}, {ts}, {cols} from {table} where {key} = any(%s)").format(
            key=sql.Identifier(ENTITY_COLUMN),
            ts=sql.Identifier(column(view.name, "event_ts")),
            cols=idents([column(view.name, f) for f, _, _ in features]),
            table=table_identifier(config),
        )
        with self._connection(config) as conn:
            rows = {row[0]: row[1:] for row in conn.execute(statement, (user_ids,))}
        results: list[ReadResult] = []
        for user_id in user_ids:
            row = rows.get(user_id)
            if row is None or row[0] is None:  # no row, or no value of this view yet
                results.append((None, None))
                continue
            values = {
                name: python_values_to_proto_values([value], value_type)[0]
                for (name, _, value_type), value in zip(features, row[1:], strict=True)
            }
            results.append((row[0], values))
        return results

    # -- what `python -m serving` checks before it starts ---------------------------------------
    def served_problem(self, config: RepoConfig) -> StoreProblem | None:
        try:
            with self._connection(config) as conn:
                table = conn.execute("select to_regclass(%s)", (table_identifier(config).as_string(conn),))
                services = conn.execute("select to_regclass('feast.feature_services')")
                built = table.fetchone()[0] is not None and services.fetchone()[0] is not None
        except psycopg.Error as exc:
            where = targets.admin_target().safe_url  # the store's database, never its password
            return StoreProblem(
                f"cannot reach PostgreSQL at {where} ({type(exc).__name__}); run `make db-up`", True
            )
        if not built:
            return StoreProblem(
                "the stack was never built (no online store): run `make pipeline` first", False
            )
        return None

    def example_user(self, config: RepoConfig, preferred: str) -> str | None:
        statement = sql.SQL(
            "select coalesce((select {key} from {t} where {key} = %s), (select min({key}) from {t}))"
        ).format(key=sql.Identifier(ENTITY_COLUMN), t=table_identifier(config))
        with self._connection(config) as conn:
            return conn.execute(statement, (preferred,)).fetchone()[0]


# -- the plugin (streamflow/plugins.py) --------------------------------------------------------------
UNREACHABLE: tuple[type[BaseException], ...] = ()  # psycopg's own: every step's already
FEAST_TYPE = "streamflow.online.postgres.FeastOnlineStore"


class FeastOnlineStoreConfig(PostgreSQLConfig):
    type: Literal["streamflow.online.postgres.FeastOnlineStore"] = FEAST_TYPE


class FeastOnlineStore(StreamflowOnlineStore):
    def make_backend(self, store_config: FeastOnlineStoreConfig) -> PostgresOnlineStore:
        return PostgresOnlineStore()


def feast_online_store(target: PgTarget, reader: bool = False) -> dict[str, object]:
    """feature_store.yaml's `online_store`: the table in schema feast_online of `target`'s
    database. One connection per process: the steps are sequential, and the API reads through a
    pool of its own (serving/stores/postgres.py), so a pool here would only leave idle threads."""
    return {"type": FEAST_TYPE, **target.feast_fields(), "db_schema": ONLINE_SCHEMA, "conn_type": "singleton"}


LOCAL_PORTS = 0


@contextlib.contextmanager
def local_service(folder: Path, ports: tuple[int, ...]) -> Iterator[dict[str, str]]:
    """The store is the database itself: nothing to start."""
    yield {config.ONLINE_STORE: "postgres"}


def unanswered(port: int) -> dict:
    """The variables that point every reader at a server that does not answer (nothing listens
    on `port`): the contract suite's outage."""
    return {config.DATABASE_URL: targets.admin_target().with_port(port).url}
