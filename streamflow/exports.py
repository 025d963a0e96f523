"""The monthly export format: one CSV per table, its columns, their kinds and PostgreSQL types,
the user id rule and the as_of of each month folder.

Ingestion, the data generator, the API and the tests all read the format from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

# What a user id may look like, wherever one arrives (a CSV cell, a URL, a request body).
USER_ID_MAX_LENGTH = 64
USER_ID = rf"[A-Za-z0-9_-]{{1,{USER_ID_MAX_LENGTH}}}"
USER_ID_RULE = f"[A-Za-z0-9_-], 1-{USER_ID_MAX_LENGTH} characters"

# kind -> PostgreSQL type of the raw column
PG_TYPES = {
    "id": "text",
    "text": "text",
    "bool": "boolean",
    "int": "bigint",
    "float": "double precision",
    "date": "date",
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # one of PG_TYPES

    @property
    def pg_type(self) -> str:
        return PG_TYPES[self.kind]


@dataclass(frozen=True)
class RawTable:
    name: str
    columns: tuple[Column, ...]

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    @property
    def header(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def snapshot_table(self) -> str:
        return f"{self.name}_snapshots"


def _table(name: str, *columns: tuple[str, str]) -> RawTable:
    return RawTable(name, tuple(Column(n, k) for n, k in (("user_id", "id"), *columns)))


# users.csv comes first: every other file may only name users it lists.
TABLES: tuple[RawTable, ...] = (
    _table(
        "users",
        ("signup_date", "date"),
        ("user_gender", "text"),
        ("user_is_senior", "bool"),
        ("has_family", "bool"),
        ("has_dependents", "bool"),
    ),
    _table(
        "subscriptions",
        ("months_active", "int"),
        ("plan_stream_tv", "bool"),
        ("plan_stream_movies", "bool"),
        ("contract_type", "text"),
        ("paperless_billing", "bool"),
        ("monthly_fee", "float"),
        ("total_paid", "float"),
        ("net_service", "text"),
    ),
    _table(
        "usage_agg_30d",
        ("watch_hours_30d", "float"),
        ("avg_session_mins_7d", "float"),
        ("unique_devices_30d", "int"),
        ("skips_7d", "int"),
        ("rebuffer_events_7d", "int"),
    ),
    _table("payments_agg_90d", ("failed_payments_90d", "int")),
    _table(
        "support_agg_90d",
        ("support_tickets_90d", "int"),
        ("ticket_avg_resolution_hrs_90d", "float"),
    ),
    _table("labels", ("churn_label", "bool")),
)

FIRST_AS_OF = date(2024, 1, 31)


def month_end(index: int, first: date = FIRST_AS_OF) -> date:
    """as_of of `month_<index>`: month_000 = 2024-01-31, month_001 = 2024-02-29, ..."""
    months = first.year * 12 + first.month - 1 + index + 1  # the month after the target
    year, month = divmod(months, 12)
    return date(year, month + 1, 1) - timedelta(days=1)


def months_read(as_of: date) -> tuple[date, date]:
    """The exports a month's marts are built from: its own and the month before's (usage_trends
    measures the change against it), so a month restated changes the next month's marts too."""
    return as_of, as_of.replace(day=1) - timedelta(days=1)


def last_loaded(loaded: dict[date, datetime], as_of: date) -> datetime | None:
    """The newest load of the exports `as_of`'s marts read (None: none is logged)."""
    return max((loaded[d] for d in months_read(as_of) if d in loaded), default=None)
