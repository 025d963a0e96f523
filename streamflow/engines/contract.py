"""The offline engine: where the validated months, the dbt marts and Feast's offline store live,
and what the rest of the code asks of it. PostgreSQL (postgres.py) is the one implementation
today; a distributed engine (Spark) is a second module implementing this contract, chosen in
streamflow/engines/__init__.py, never a branch inside the first.

What each step asks:
- ingest: `load_month` (validated with streamflow/ingest/validate.py, whole or not at all);
- dbt: `dbt_target` (the profile's target and its connection variables);
- Feast: `feast_offline_store` (feature_store.yaml's offline store: Feast reads the marts);
- materialize: `connect`, `assert_built` (the quality gate), `event_timestamps`, `loaded_at`,
  `materialize_month` (a month into the online store, the way this engine reaches it);
- monitoring: `mart_months`, `loaded_at`;
- training sets: `labelled_entities` / `uploaded_entities` (the entity query), `training_sql`
  (the point-in-time query), `read_query` / `stream_query` (its rows, out in batches).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

if TYPE_CHECKING:
    from feast.repo_config import RepoConfig

    from streamflow.online.contract import OnlineStoreBackend, Views
    from streamflow.settings import PgTarget


class OfflineEngine(Protocol):
    name: str

    def load_month(self, month_dir: Path, as_of: date, force: bool = False) -> dict[str, int]:
        """Validate and land one month; rows per table (none when unchanged, unless `force`)."""

    def feast_ready(self) -> None:
        """Raise StepRefused unless Feast's offline store reads this engine's marts (before apply)."""

    def feast_offline_store(self, target: PgTarget) -> dict[str, Any]:
        """feature_store.yaml's `offline_store` section (`target`: the PostgreSQL role in use)."""

    def dbt_target(self) -> dict[str, str]:
        """The variables dbt's profiles.yml reads for this engine (target name included)."""

    def connect(self, autocommit: bool = False) -> AbstractContextManager[Any]:
        """A connection on which the marts are read (materialize, monitoring)."""

    def assert_built(self, conn: Any) -> None:
        """Raise StepRefused unless the last dbt build passed on the data loaded now."""

    def event_timestamps(self, conn: Any, views: Sequence[Any]) -> list[datetime]:
        """Every event time (month) present in the views' marts, oldest first."""

    def materialize_month(
        self, online: OnlineStoreBackend, conn: Any, config: RepoConfig, views: Views, month: datetime
    ) -> int:
        """Each user's row of `month` in every view into `online`, inside the transaction open on
        `conn` (the months log's); the users written."""

    def loaded_at(self, conn: Any) -> dict[date, datetime]:
        """When each month's export was last loaded."""

    def mart_months(self, conn: Any, table: str) -> list[date]:
        """The months a mart holds."""

    def labelled_entities(self, as_ofs: Sequence[date] | None) -> str:
        """The entity query of every user labelled at each of `as_ofs` (None: every labelled
        month), at that as_of, with its label: user_id, event_timestamp, churn_label."""

    def uploaded_entities(self, csv_path: Path) -> AbstractContextManager[str]:
        """The entity query of a user_id,event_timestamp file (no offset: UTC), each row labelled
        point in time; a bad row stops with its line and column; nothing is left afterwards."""

    def training_sql(self, store: Any, service: Any, entity_query: str) -> str:
        """The point-in-time query of `service`'s features for the rows of `entity_query`, as
        this engine runs it: every entity column, then the features (the same rows as Feast's
        `get_historical_features`)."""

    def read_query(self, query: str) -> pa.Table:
        """The whole result of an offline query as one Arrow table."""

    def stream_query(self, query: str) -> Iterator[pa.RecordBatch]:
        """The result of an offline query in bounded batches."""
