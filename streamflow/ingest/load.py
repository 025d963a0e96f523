"""Load a validated month into schema `raw` in one transaction.

Snapshots are list-partitioned by as_of. A month is COPYed into a table created in the loading
transaction, gets its primary key after the COPY (one sorted build instead of a million inserts)
and then takes the place of that month's partition. Live tables are truncated and refilled from
the rows they keep plus the new month, their key rebuilt after. Tables created or truncated in
their transaction are not WAL-logged when the server runs with wal_level=minimal (the embedded
one does), and COPY FREEZE spares the first reader from rewriting every page. Everything happens
in the month's one transaction: readers see the old month or the new one, never half of it.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
from psycopg import sql

from streamflow import database, logs, progress, targets
from streamflow.control import job_lock, locks
from streamflow.control.ingest_log import record_load
from streamflow.exports import TABLES, month_end
from streamflow.ingest.tables import (
    WRITE_ONCE,
    columns_ddl,
    ensure_raw_tables,
    partition_name,
    rename,
)
from streamflow.ingest.validate import CheckedFile, IngestError, copy_error, file_sha256, submit_checks

MONTH_DIR = re.compile(r"^month_(\d{3,})$")


@dataclass(frozen=True)
class StagedFile:
    """One file of the month in a table of its own, invisible to readers until published."""

    checked: CheckedFile
    as_of: date

    @property
    def partition(self) -> str:
        return partition_name(self.checked.table, self.as_of)

    @property
    def incoming(self) -> str:
        return f"{self.partition}__incoming"

    @property
    def kept(self) -> str:
        """Temporary: the live rows this month does not replace."""
        return f"kept_{self.checked.table.name}"


def _stage(conn: psycopg.Connection, checked: CheckedFile, as_of: date) -> StagedFile:
    """COPY the file into a new table and index it; set aside the live rows it will not replace."""
    staged = StagedFile(checked, as_of)
    table = checked.table
    names = sql.SQL(", ").join(sql.Identifier(c) for c in checked.columns)  # the file's order
    incoming, month = sql.Identifier("raw", staged.incoming), sql.Literal(as_of)
    conn.execute(
        sql.SQL(
            # the check constraint lets ATTACH PARTITION skip scanning for rows of other months
            "create table {} ({}, as_of date not null default {month} check (as_of = {month}), "
            "loaded_at timestamptz not null default now()) {storage}"
        ).format(incoming, columns_ddl(table), month=month, storage=WRITE_ONCE)
    )
    try:
        copy_sql = sql.SQL("copy {} ({}) from stdin (format csv, header true, freeze true)")
        with conn.cursor().copy(copy_sql.format(incoming, names)) as copy:
            content = memoryview(checked.content)  # the bytes validated, not the file again
            for start in range(0, len(content), 1 << 20):
                copy.write(content[start : start + (1 << 20)])
    except psycopg.errors.DataError as exc:
        raise copy_error(checked.path, exc) from None
    conn.execute(sql.SQL("alter table {} add primary key (user_id, as_of)").format(incoming))
    conn.execute(sql.SQL("analyze {}").format(incoming))
    # Live holds each user's newest month: users this file does not name keep their row, and so
    # do users whose live row is newer (an older month loaded again never wins).
    conn.execute(
        sql.SQL(
            "create temp table {kept} on commit drop as select l.* from {live} l "
            "left join {incoming} n on n.user_id = l.user_id where n.user_id is null or l.as_of > {month}"
        ).format(
            kept=sql.Identifier(staged.kept),
            live=sql.Identifier("raw", table.name),
            incoming=incoming,
            month=month,
        )
    )
    return staged


def _publish(conn: psycopg.Connection, staged: StagedFile) -> None:
    """Swap the month's partition in (replacing a restated one) and refill the live table.

    The live table is emptied and refilled rather than replaced, so that views, grants and
    comments on it survive; its primary key is rebuilt once after the fill."""
    table = staged.checked.table
    live, pkey = sql.Identifier("raw", table.name), sql.Identifier(f"{table.name}_pkey")
    conn.execute(sql.SQL("drop table if exists raw.{}").format(sql.Identifier(staged.partition)))
    rename(conn, staged.incoming, staged.partition)
    conn.execute(
        sql.SQL("alter table raw.{} attach partition raw.{} for values in ({})").format(
            sql.Identifier(table.snapshot_table), sql.Identifier(staged.partition), sql.Literal(staged.as_of)
        )
    )
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in [*table.header, "as_of", "loaded_at"])
    conn.execute(sql.SQL("truncate {}").format(live))
    conn.execute(sql.SQL("alter table {} drop constraint {}").format(live, pkey))
    conn.execute(
        sql.SQL(
            "insert into {live} ({columns}) select {columns} from {kept} "
            "union all select {columns} from raw.{partition} n "
            "where not exists (select from {kept} k where k.user_id = n.user_id)"
        ).format(
            live=live,
            columns=columns,
            kept=sql.Identifier(staged.kept),
            partition=sql.Identifier(staged.partition),
        )
    )
    conn.execute(sql.SQL("alter table {} add constraint {} primary key (user_id)").format(live, pkey))
    conn.execute(sql.SQL("analyze {}").format(live))
    checked = staged.checked
    record_load(conn, staged.as_of, table, str(checked.path), checked.sha256, checked.rows)


def already_loaded(month_dir: Path, as_of: date, target: targets.PgTarget | None = None) -> bool:
    """Every file of the month is byte-identical (sha256) to the one loaded for this as_of."""
    database.ensure_database(target)
    with database.connect(target) as conn:
        if conn.execute("select to_regclass('raw.ingest_log')").fetchone()[0] is None:
            return False
        loaded = dict(
            conn.execute("select table_name, sha256 from raw.ingest_log where as_of = %s", (as_of,))
        )
    if set(loaded) != {table.name for table in TABLES}:
        return False
    paths = [month_dir / table.file_name for table in TABLES]
    if not all(path.is_file() for path in paths):
        return False
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:  # hashing releases the GIL
        digests = list(pool.map(file_sha256, paths))
    return digests == [loaded[table.name] for table in TABLES]


def load_month(
    month_dir: Path, as_of: date, target: targets.PgTarget | None = None, force: bool = False
) -> dict[str, int]:
    """Validate and load one month in one transaction; returns rows loaded per table (none when
    the month's files are the ones loaded already, unless `force`). Each file is validated in a
    worker thread while the server COPYs the one before it; the first invalid file rolls the
    whole month back, so a bad month still changes nothing."""
    month_dir = Path(month_dir)
    if not force and month_dir.is_dir() and already_loaded(month_dir, as_of, target):
        announce_skipped(month_dir, as_of, "loaded already")
        return {}
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="validate") as pool:
        checks = submit_checks(month_dir, pool)
        try:
            database.ensure_database(target)
            with database.connect(target) as conn:
                locks.hold_ingest(conn)
                job_lock.fence(conn)
                # hash joins and primary-key builds over a million rows stay in memory
                conn.execute("set local work_mem = '256MB'")
                conn.execute("set local maintenance_work_mem = '512MB'")
                ensure_raw_tables(conn)
                with progress.task(f"ingest {month_dir.name}", total=len(checks), unit="files") as shown:
                    staged = []
                    for check in checks:
                        staged.append(_stage(conn, check.result()[0], as_of))
                        shown.advance(rows=staged[-1].checked.rows)
                    shown.note("publishing")
                    for item in staged:
                        _publish(conn, item)
        finally:
            for check in checks:  # after a failure, do not validate the rest
                check.cancel()
    counts = {item.checked.table.name: item.checked.rows for item in staged}
    announce_loaded(month_dir, as_of, counts, time.perf_counter() - started)
    return counts


def announce_skipped(month_dir: Path, as_of: date, where: str) -> None:
    """The month_skipped record (the benchmarks read it), for any engine."""
    logs.say(
        f"skipped {month_dir} as_of {as_of}: the same files are {where} (--force reloads)",
        event="month_skipped",
        as_of=str(as_of),
    )


def announce_loaded(
    month_dir: Path, as_of: date, counts: dict[str, int], seconds: float, into: str = ""
) -> None:
    """The month_loaded record (rows per table, seconds; the benchmarks read it), for any engine."""
    summary = ", ".join(f"{name} {rows:,}" for name, rows in counts.items())
    logs.say(
        f"loaded {month_dir} as_of {as_of}{into}: {summary} rows in {seconds:.1f}s",
        event="month_loaded",
        as_of=str(as_of),
        rows=sum(counts.values()),
        seconds=round(seconds, 3),
    )


def implied_as_of(month_dir: Path) -> date | None:
    """The as_of a folder named month_NNN stands for (month_000 = 2024-01-31); None for other names."""
    match = MONTH_DIR.match(Path(month_dir).name)
    return month_end(int(match.group(1))) if match else None


def month_dirs(seeds_dir: Path) -> list[tuple[Path, date]]:
    """Every month_NNN folder in order, with the as_of its number implies."""
    seeds_dir = Path(seeds_dir)
    if not seeds_dir.is_dir():
        raise IngestError(seeds_dir, "no such folder" if not seeds_dir.exists() else "not a folder")
    found = sorted((int(m.group(1)), p) for p in Path(seeds_dir).iterdir() if (m := MONTH_DIR.match(p.name)))
    if not found:
        raise IngestError(seeds_dir, "no month_NNN folders found (month_000 = 2024-01-31, month_001, ...)")
    return [(path, month_end(number)) for number, path in found]


def load_all(seeds_dir: Path, target: targets.PgTarget | None = None, force: bool = False) -> None:
    for month_dir, as_of in month_dirs(seeds_dir):
        load_month(month_dir, as_of, target, force)
