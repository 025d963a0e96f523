"""The offline engine: where the validated months, the dbt marts and Feast's offline store live,
and what the steps ask of it. PostgreSQL (postgres.py) and Spark (spark/) implement it; a new
engine is a new subclass, registered in streamflow/engines/__init__.py, never a branch inside
another. What is not about the engine (the build log, the ingest log, the locks) is the
control plane's (streamflow/control/), which the steps open themselves.

What each step asks:
- ingest: `load_month` (validated with streamflow/ingest/validate.py, whole or not at all);
- dbt: `dbt_target` (the profile's target and its connection variables);
- Feast: `feast_offline_store` (feature_store.yaml's offline store), `feast_source` (a mart's
  data source, for the generated feature_repo/data_sources.py), `feast_ready`;
- marts: `marts_missing`, `mart_months`, `event_timestamps`;
- materialize: `month_batches` (each user's newest row of a month: the one copy of that query),
  fed by `materialize_month` to the online store's month writer (`feed_writer`: in this process
  by default; Spark's executors) or, where an engine has one, a faster path;
- training sets: `labelled_entities` / `uploaded_entities` (the entity query), `training_sql`
  (the point-in-time query), `read_query` / `stream_query` (its rows, out in batches);
- the served log (streamflow/served/): `land_served` (a spool file, exactly once),
  `served_tables`; the replay's SQL in the engine's dialect (`quote`, `timestamp_literal`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from streamflow.refusals import StepRefused

WRITE_STREAMS = 2  # month writer calls at once in this process (feed_writer)

if TYPE_CHECKING:
    import psycopg
    from feast import FeatureService, FeatureStore
    from feast.data_source import DataSource
    from feast.repo_config import RepoConfig

    from streamflow.online.contract import MonthWriter, OnlineStoreBackend, Views
    from streamflow.targets import PgTarget


ENTITY_TIMESTAMP = "event_timestamp"  # the entity queries' time column, as Feast names it


def feast_query_contexts(store: FeatureStore, service: FeatureService, first, last) -> list:
    """What Feast would join for `service`: its views as Feast resolves them, each view's window
    from the entity set's first and last time (None: no entity rows, so nothing will be read and
    any window does). Each engine writes its own point-in-time SQL over these."""
    from feast import utils
    from feast.infra.offline_stores import offline_utils

    if first is None:
        first = last = datetime.now(UTC)
    refs = utils._get_features(store.registry, store.project, service, allow_cache=True)
    views, _ = utils._get_feature_views_to_use(store.registry, store.project, service)
    return offline_utils.get_feature_view_query_context(
        refs, views, store.registry, store.project, (first, last)
    )


class OfflineEngine(ABC):
    name: ClassVar[str]

    # -- landing ----------------------------------------------------------------------------------
    @abstractmethod
    def load_month(self, month_dir: Path, as_of: date, force: bool = False) -> dict[str, int]:
        """Validate and land one month; rows per table (none when unchanged, unless `force`)."""

    @abstractmethod
    def dbt_target(self) -> dict[str, str]:
        """The variables dbt's profiles.yml reads for this engine (target name included)."""

    # -- Feast ------------------------------------------------------------------------------------
    @abstractmethod
    def feast_offline_store(self, target: PgTarget) -> dict[str, Any]:
        """feature_store.yaml's `offline_store` section (`target`: the PostgreSQL role in use)."""

    @abstractmethod
    def feast_source(self, arguments: dict[str, Any]) -> DataSource:
        """A mart's Feast data source of the kind this engine's offline store reads, from its
        arguments as feature_repo/data_sources.py renders them (name, table, timestamp_field...)."""

    def feast_ready(self) -> None:  # noqa: B027 (most engines have nothing to prepare)
        """Raise StepRefused unless Feast's offline store reads this engine's marts (before apply)."""

    # -- marts ------------------------------------------------------------------------------------
    @abstractmethod
    def marts_missing(self, tables: Sequence[str]) -> list[str]:
        """The tables of `tables` the engine does not hold (dbt has not built them)."""

    @abstractmethod
    def mart_months(self, table: str) -> list[date]:
        """The months a mart holds."""

    @abstractmethod
    def event_timestamps(self, views: Views) -> list[datetime]:
        """Every event time (month) present in the views' marts, oldest first."""

    # -- materialize ------------------------------------------------------------------------------
    @abstractmethod
    def month_batches(self, views: Views, month: datetime) -> Iterator[pa.RecordBatch]:
        """Each user's newest row of `month` in every view, one row per user, in the online
        layout (`user_id`, then each view's layout.view_columns; NULLs where a view has none)."""

    def materialize_month(
        self,
        online: OnlineStoreBackend,
        conn: psycopg.Connection,
        config: RepoConfig,
        views: Views,
        month: datetime,
    ) -> int:
        """The month into `online`, published in the transaction open on `conn` (the control
        plane's: the months log's); the users written. The generic path: the store's month
        writer, fed by `feed_writer`. An engine overrides it where it has a faster one."""
        writer = online.month_writer(config, views)
        writer.open()
        try:
            return writer.publish(conn, self.feed_writer(writer, views, month))
        finally:
            writer.close()

    def feed_writer(self, writer: MonthWriter, views: Views, month: datetime) -> int:
        """Run `writer` over the month's `month_batches`; the rows it took. Here, in this process,
        WRITE_STREAMS calls at once, each taking the next batch as it is ready (a writer runs on
        several partitions at once, as on Spark's executors): the store's server takes two COPY
        streams on two cores (1M users into PostgreSQL 2.8 s -> 2.2 s). An engine with workers of
        its own has them run it."""
        batches = self.month_batches(views, month)
        taking, failed = threading.Lock(), threading.Event()

        def partition() -> Iterator[pa.RecordBatch]:
            while not failed.is_set():
                with taking:  # one reader of the engine's batches at a time
                    batch = next(batches, None)
                if batch is None:
                    return
                yield batch

        def stream(_: int) -> int:
            try:
                return sum(pc.sum(batch.column("written")).as_py() or 0 for batch in writer(partition()))
            except BaseException:
                failed.set()  # the other streams stop taking batches
                raise

        try:
            with ThreadPoolExecutor(WRITE_STREAMS, thread_name_prefix="month-writer") as pool:
                return sum(pool.map(stream, range(WRITE_STREAMS)))
        finally:
            getattr(batches, "close", lambda: None)()

    # -- training sets ----------------------------------------------------------------------------
    @abstractmethod
    def labelled_entities(self, as_ofs: Sequence[date] | None) -> str:
        """The entity query of every user labelled at each of `as_ofs` (None: every labelled
        month), at that as_of, with its label: user_id, event_timestamp, churn_label."""

    def labelled_slices(self, as_ofs: Sequence[date] | None) -> list[Sequence[date] | None]:
        """The labelled months of a training set, in the queries it is read by, oldest first
        (each a `labelled_entities` query; their rows follow one another in the file). Here one
        query of them all; an engine whose point-in-time join costs more than linearly in the
        rows (a sort that spills) reads a month at a time."""
        return [as_ofs]

    @abstractmethod
    def uploaded_entities(self, csv_path: Path) -> AbstractContextManager[str]:
        """The entity query of a user_id,event_timestamp file (no offset: UTC), each row labelled
        point in time; a bad row stops with its line and column; nothing is left afterwards."""

    @abstractmethod
    def training_sql(self, store: FeatureStore, service: FeatureService, entity_query: str) -> str:
        """The point-in-time query of `service`'s features for the rows of `entity_query`, as
        this engine runs it: every entity column, then the features (the same rows as Feast's
        `get_historical_features`)."""

    # -- the served log (streamflow/served/) ------------------------------------------------------
    def land_served(self, service: str, file_id: str, table: pa.Table) -> int:
        """The served log's spool file `file_id` (rows of feature service `service`) into the
        engine exactly once: the rows landed now (0: the file landed before)."""
        raise StepRefused(f"the served log does not land on the {self.name} engine yet")

    def served_tables(self) -> dict[str, str]:
        """Each selection's landed rows (a feature service's, or `custom` for requests that named
        features) as a table the engine's SQL reads: selection -> table (empty: none landed)."""
        return {}

    # -- its SQL's dialect, where a query is written outside dbt (ANSI unless it says otherwise) -----
    def quote(self, name: str) -> str:
        """`name` as an identifier."""
        return '"' + name.replace('"', '""') + '"'

    def timestamp_literal(self, moment: datetime) -> str:
        """`moment` (aware) as a literal of the engine's timestamp type."""
        return f"timestamp with time zone '{moment.astimezone(UTC).isoformat()}'"

    @abstractmethod
    def read_query(self, query: str) -> pa.Table:
        """The whole result of an offline query as one Arrow table."""

    @abstractmethod
    def stream_query(self, query: str) -> Iterator[pa.RecordBatch]:
        """The result of an offline query in bounded batches."""


class EnginePlugin(Protocol):
    """What an engine's module (registered in streamflow/plugins.py) brings as module attributes
    (tests/unit/test_house_rules.py checks every registered module has them)."""

    ENGINE: type[OfflineEngine]  # its OfflineEngine subclass
    UNREACHABLE: tuple[type[BaseException], ...]  # its client's errors when its servers do not answer

    def local_service(self, folder: Path) -> AbstractContextManager[dict[str, str]]:
        """What the engine needs on this machine alone, under `folder` (the engine contract suite,
        tests/integration/engines/), yielding the variables that point every command at it."""
