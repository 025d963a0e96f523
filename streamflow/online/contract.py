"""The write side of an online store, as the Feast plugin (streamflow/online/feast_plugin.py),
materialize and `python -m serving`'s start-up check use it. PostgreSQL (postgres.py) and Redis
(redis.py) implement it; the API's read side is serving/stores/, one reader per store.

Every implementation keeps the same promises, held by one contract suite run against each
(tests/integration/online/test_contract.py):
- a view's values are only replaced by a newer event of that view, or by the same event with
  other values (a restatement): materializing an old month after a new one never regresses them;
- a row whose values do not change is not rewritten;
- the months log says which (view, month) the store holds and since when;
- every change of served values moves the store's generation (the API's caches watch it).

A month reaches every store through its `MonthWriter`, in Arrow batches (from the driver, or
from many processes at once: Spark's executors), published in the month's transaction. A store
may also offer `MonthFromQuery`: the PostgreSQL engine then hands it the month as a query on the
database the marts are in, and the store writes it there in one set-based statement.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

import pyarrow as pa
from feast import FeatureView
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig

from streamflow.control import Transaction

# (user_id, event time, created time, values in the view's feature order)
Row = tuple[str, datetime, datetime | None, list[Any]]
ReadResult = tuple[datetime | None, dict[str, ValueProto] | None]
Views = Sequence[FeatureView]


class StoreProblem(NamedTuple):
    """What keeps the API from serving: the store did not answer, or holds nothing yet."""

    message: str
    unreachable: bool


class MonthWriter(Protocol):
    """One month of every view, written from Arrow batches whose columns are `user_id` and each
    view's group of layout.view_columns (event_ts, created_ts, features), one row per user.
    Picklable: Spark ships it to its executors, which call it on their partitions, retried
    partitions included (a row written twice is written once)."""

    def open(self) -> None:
        """Before the first partition, on the driver (make room for the rows)."""

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Write a partition's batches; yield one batch with column `written` (rows taken)."""

    def publish(self, conn: Transaction, written: int) -> int:
        """On the driver, in the month's transaction once every partition is in: make the month
        visible through the guard; the users written."""

    def close(self) -> None:
        """After the month, whatever happened (drop what `open` made)."""


@runtime_checkable
class MonthFromQuery(Protocol):
    """An optional capability: a month taken straight from a query on PostgreSQL, where the
    marts and the store share the database (`month_rows`: a psycopg `sql.Composable`)."""

    def write_month_from(
        self, conn: Transaction, config: RepoConfig, views: Views, month_rows: Any, params: dict
    ) -> int:
        """`month_rows` (run on `conn` with `params`, inside the caller's transaction) gives the
        month in the online layout, one row per user: write it through the guard; the users
        written."""


class OnlineStoreBackend(ABC):
    """What a store implements. `conn` is the month's transaction on the control plane
    (control.Transaction): a store kept elsewhere records in its own place and ignores it."""

    @abstractmethod
    def update(self, config: RepoConfig, to_delete: Sequence[FeatureView], to_keep: Sequence[FeatureView]):
        """Make room for the views to keep (refusing types the store cannot carry), drop the others."""

    @abstractmethod
    def teardown(self, config: RepoConfig) -> None:
        """Remove everything the project keeps in the store."""

    @abstractmethod
    def write_rows(self, config: RepoConfig, view: FeatureView, rows: Iterable[Row]) -> None:
        """Feast's write path (`feast materialize`, push): each user's latest row, guarded."""

    @abstractmethod
    def read(
        self, config: RepoConfig, view: FeatureView, user_ids: list[str], requested: list[str] | None
    ) -> list[ReadResult]:
        """Feast's read path (the SDK, `feast serve`): per user, the view's event time and values."""

    @abstractmethod
    def month_writer(self, config: RepoConfig, views: Views) -> MonthWriter:
        """The writer of one month of `views`, fed Arrow batches by any engine."""

    @abstractmethod
    def materialized_months(
        self, conn: Transaction, config: RepoConfig
    ) -> dict[tuple[str, datetime], datetime]:
        """The months log: (view field, month) -> when it was materialized (layout.field_of: a
        view whose features changed has a new field, and no month until it is refilled)."""

    @abstractmethod
    def record_months(
        self, conn: Transaction, config: RepoConfig, fields: list[str], month: datetime
    ) -> None:
        """Log a month of the views of `fields` as held, once its rows are in."""

    @abstractmethod
    def bump_generation(self, conn: Transaction | None, config: RepoConfig) -> None:
        """Tell the API's workers that served values changed, so their memory of them is dropped:
        after every month materialized (new, restated, reloaded); `update` and `write_rows` bump it
        themselves. On PostgreSQL it commits with the month's rows; on Redis it follows the
        month's last write."""

    def after_materialize(self, conn: Transaction, config: RepoConfig) -> None:  # noqa: B027
        """Tidy up after a run (planner statistics, say); most stores have nothing to tidy."""

    @abstractmethod
    def served_problem(self, config: RepoConfig) -> StoreProblem | None:
        """What keeps the API from serving (unreachable, nothing materialized), or None."""

    @abstractmethod
    def example_user(self, config: RepoConfig, preferred: str) -> str | None:
        """`preferred` if the store holds it, else any user it holds (for the banner's examples)."""


class StorePlugin(Protocol):
    """What a store's module (registered in streamflow/plugins.py) brings besides its backend, as
    module attributes (tests/unit/test_house_rules.py checks every registered module has them)."""

    FEAST_TYPE: str  # `online_store.type` in feature_store.yaml: the module's FeastOnlineStore
    FeastOnlineStore: type  # feast_plugin.StreamflowOnlineStore over this backend
    FeastOnlineStoreConfig: type  # its section's fields, as Feast validates them
    UNREACHABLE: tuple[type[BaseException], ...]  # its client's errors when a server does not answer
    LOCAL_PORTS: int  # ports its local_service needs

    def feast_online_store(self, target: Any, reader: bool = False) -> dict[str, object]:
        """feature_store.yaml's `online_store` section (`reader`: as the API reads)."""

    def local_service(self, folder: Any, ports: tuple[int, ...]) -> Any:
        """A context manager: a server of its own under `folder` (tests), yielding the variables
        that point every project tool at it."""

    def unanswered(self, port: int) -> dict:
        """The variables that point every reader at a server of this store that does not answer
        (nothing listens on `port`): the contract suite's outage."""
