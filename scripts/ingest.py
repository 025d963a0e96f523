"""Load monthly CSV exports into schema `raw`: live tables plus `<table>_snapshots` stamped with as_of.

    python -m scripts.ingest --month-dir DIR --as-of YYYY-MM-DD     # one month
    python -m scripts.ingest --seeds-dir DIR                        # every month_NNN, in order

Every file of a month is validated (in a worker thread, while the server COPYs the file before
it) and the whole month loads in one transaction: a bad month changes nothing. Loading a month
again replaces its snapshot partition (a restatement); live tables only move forward in as_of.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from scripts import database, settings
from scripts.raw_tables import TABLES, RawTable, month_end

MONTH_DIR = re.compile(r"^month_(\d{3,})$")
CHUNK_ROWS = 200_000

# What a non-blank cell of each kind must look like. Blank means unknown and loads as NULL.
CELL_PATTERNS = {
    "id": r"[A-Za-z0-9_-]{1,64}",
    "text": r"[^\x00-\x1f]{1,200}",
    "bool": r"True|False",
    "int": r"[+-]?\d{1,18}",
    "float": r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?",
    "date": r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])",
}
KIND_NAMES = {
    "id": "a user id ([A-Za-z0-9_-], 1-64 characters)",
    "text": "text without control characters",
    "bool": "True or False",
    "int": "an integer",
    "float": "a number",
    "date": "a date YYYY-MM-DD",
}


class IngestError(Exception):
    """A month that cannot load; the message names the file, line and column."""

    def __init__(self, path: Path, message: str, line: int | None = None, column: str | None = None):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.column = path, line, column


@dataclass(frozen=True)
class CheckedFile:
    table: RawTable
    path: Path
    rows: int
    sha256: str


# -- validation ----------------------------------------------------------------------------------
def _check_header(path: Path, table: RawTable) -> None:
    if not path.exists():
        raise IngestError(path, f"missing file (every month needs {table.file_name})")
    with path.open("rb") as fh:
        first = fh.readline()
    if not first.strip():
        raise IngestError(path, "empty file: expected a header line " + ",".join(table.header), line=1)
    try:
        header = first.decode("utf-8-sig").rstrip("\r\n").split(",")
    except UnicodeDecodeError as exc:
        raise IngestError(path, f"not UTF-8 ({exc.reason})", line=1) from None
    if header == table.header:
        return
    if len(header) == 1 and any(d in header[0] for d in ";\t|"):
        raise IngestError(path, "wrong delimiter: columns must be separated by commas", line=1)
    missing = [c for c in table.header if c not in header]
    extra = [c for c in header if c not in table.header]
    problems = []
    if missing:
        problems.append("missing column(s) " + ", ".join(missing))
    if extra:
        problems.append("unexpected column(s) " + ", ".join(extra))
    if not problems:
        problems.append("columns out of order")
    column = (missing or extra or [None])[0]
    raise IngestError(
        path,
        "; ".join(problems) + f" (expected header {','.join(table.header)})",
        line=1,
        column=column,
    )


def _locate_bad_utf8(path: Path) -> int:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def _chunks(path: Path, table: RawTable) -> Iterable[pd.DataFrame]:
    reader = pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        chunksize=CHUNK_ROWS,
        encoding="utf-8",
        engine="c",
        skip_blank_lines=False,
    )
    try:
        yield from reader
    except pd.errors.ParserError as exc:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if match:
            expected, line, saw = match.groups()
            raise IngestError(path, f"expected {expected} fields, found {saw}", line=int(line)) from None
        raise IngestError(path, f"unreadable CSV: {exc}") from None
    except UnicodeDecodeError as exc:
        raise IngestError(path, f"not UTF-8 ({exc.reason})", line=_locate_bad_utf8(path)) from None


def _arrow_types(table: RawTable) -> dict[str, pa.DataType]:
    kinds = {"id": pa.string(), "text": pa.string(), "bool": pa.bool_(), "int": pa.int64(),
             "float": pa.float64(), "date": pa.date32()}  # fmt: skip
    return {c.name: kinds[c.kind] for c in table.columns}


def _fast_check(path: Path, table: RawTable, known_users: pa.Array | None) -> tuple[int, pa.Array] | str:
    """Typed parse in Arrow's multithreaded C++ reader plus vectorized checks; the row count and
    the user ids when every cell is valid, else a short reason (then `_locate_problem` runs)."""
    try:
        data = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=1 << 24),
            convert_options=pacsv.ConvertOptions(
                column_types=_arrow_types(table), true_values=["True"], false_values=["False"],
                null_values=[""], strings_can_be_null=True, include_columns=table.header,
            ),
        )  # fmt: skip
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        return str(exc)
    ids = data.column("user_id").combine_chunks()
    if ids.null_count or not pc.all(pc.match_substring_regex(ids, "^" + CELL_PATTERNS["id"] + "$")).as_py():
        return "bad user_id"
    for column in table.columns:
        values = data.column(column.name)
        if (
            column.kind == "text"
            and pc.any(pc.invert(pc.match_substring_regex(values, f"^{CELL_PATTERNS['text']}$"))).as_py()
        ):
            return f"bad text in {column.name}"
        if column.kind == "float" and pc.any(pc.invert(pc.is_finite(values))).as_py():
            return f"non-finite number in {column.name}"
    if pc.count_distinct(ids).as_py() != len(ids):
        return "duplicate user_id"
    if known_users is not None and not pc.all(pc.is_in(ids, value_set=known_users)).as_py():
        return "unknown user_id"
    return data.num_rows, ids


def check_file(path: Path, table: RawTable, known_users: pa.Array | None) -> tuple[CheckedFile, pa.Array]:
    """Validate one file completely; returns what it holds and the user ids it names."""
    _check_header(path, table)
    result = _fast_check(path, table, known_users)
    if isinstance(result, str):
        _locate_problem(path, table, known_users, result)
    rows, ids = result
    with path.open("rb") as fh:  # streamed: a million-row file is never held in memory
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return CheckedFile(table, path, rows, digest), ids


def _locate_problem(path: Path, table: RawTable, known_users: pa.Array | None, fast_error: str) -> None:
    """The slow, precise pass, run only when the fast one rejected the file: finds the first bad
    cell and raises an IngestError naming its line and column."""
    known = set(known_users.to_pylist()) if known_users is not None else None
    seen: set[str] = set()
    for chunk in _chunks(path, table):
        lines = chunk.index.to_numpy() + 2  # header is line 1
        for column in table.columns:
            cells = chunk[column.name]
            blank = cells == ""
            if column.kind == "id" and blank.any():
                raise IngestError(
                    path,
                    "empty user_id",
                    line=int(lines[blank.to_numpy().argmax()]),
                    column=column.name,
                )
            bad = ~blank & ~cells.str.fullmatch(CELL_PATTERNS[column.kind])
            if bad.any():
                i = bad.to_numpy().argmax()
                raise IngestError(
                    path,
                    f"{cells.iloc[i]!r} is not {KIND_NAMES[column.kind]}",
                    line=int(lines[i]),
                    column=column.name,
                )
            if column.kind == "date":
                parsed = pd.to_datetime(cells[~blank], format="%Y-%m-%d", errors="coerce")
                if parsed.isna().any():
                    i = chunk.index.get_loc(parsed.index[parsed.isna().to_numpy().argmax()])
                    raise IngestError(
                        path,
                        f"{cells.iloc[i]!r} is not a calendar date",
                        line=int(lines[i]),
                        column=column.name,
                    )
        ids = chunk["user_id"]
        dup = ids.duplicated() | ids.isin(seen)
        if dup.any():
            i = dup.to_numpy().argmax()
            raise IngestError(
                path, f"duplicate user_id {ids.iloc[i]!r}", line=int(lines[i]), column="user_id"
            )
        if known is not None:
            unknown = ~ids.isin(known)
            if unknown.any():
                i = unknown.to_numpy().argmax()
                raise IngestError(
                    path,
                    f"user_id {ids.iloc[i]!r} is not in users.csv",
                    line=int(lines[i]),
                    column="user_id",
                )
        seen.update(ids)
    with path.open(newline="", encoding="utf-8") as fh:  # what pandas pads silently: short rows
        for line, row in enumerate(csv.reader(fh), start=1):
            if len(row) < len(table.columns):
                raise IngestError(path, "row has too few fields", line=line, column=table.header[len(row)])
            if len(row) > len(table.columns):
                raise IngestError(path, f"expected {len(table.columns)} fields, found {len(row)}", line=line)
    raise IngestError(path, f"unreadable: {fast_error}")


def _submit_checks(month_dir: Path, pool: ThreadPoolExecutor) -> list[Future]:
    """Validate the month's files in order on the pool; users.csv first, the others against it.
    Headers are checked at once, so a missing or misnamed file fails before any work starts."""
    if not month_dir.is_dir():
        raise IngestError(month_dir, "not a directory")
    for table in TABLES:
        _check_header(month_dir / table.file_name, table)
    users_table, *others = TABLES
    users = pool.submit(check_file, month_dir / users_table.file_name, users_table, None)

    def check_against_users(table: RawTable) -> tuple[CheckedFile, pa.Array]:
        return check_file(month_dir / table.file_name, table, users.result()[1])

    return [users, *(pool.submit(check_against_users, table) for table in others)]


def check_month(month_dir: Path) -> list[CheckedFile]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return [future.result()[0] for future in _submit_checks(month_dir, pool)]


# -- loading -------------------------------------------------------------------------------------
# Snapshots are list-partitioned by as_of. A month is COPYed into a table created in the loading
# transaction, gets its primary key after the COPY (one sorted build instead of a million inserts)
# and then takes the place of that month's partition. Live tables are truncated and refilled from
# the rows they keep plus the new month, their key rebuilt after. Tables created or truncated in
# their transaction are not WAL-logged when the server runs with wal_level=minimal (the embedded
# one does), and COPY FREEZE spares the first reader from rewriting every page. Everything happens
# in the month's one transaction: readers see the old month or the new one, never half of it.

# Written once by the loader, which also analyzes them: autovacuum has nothing to do there, and a
# worker holding a lock on one would make the next month's swap wait for it to be cancelled (1 s).
WRITE_ONCE = sql.SQL("with (autovacuum_enabled = false)")


def _columns_ddl(table: RawTable) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in table.columns
    )


def partition_name(table: RawTable, as_of: date) -> str:
    return f"{table.snapshot_table}_{as_of:%Y_%m_%d}"


def ensure_raw_tables(conn: psycopg.Connection) -> None:
    conn.execute("create schema if not exists raw")
    for table in TABLES:
        columns = _columns_ddl(table)
        conn.execute(
            sql.SQL(
                "create table if not exists raw.{} ({}, as_of date not null, "
                "loaded_at timestamptz not null, primary key (user_id))"
            ).format(sql.Identifier(table.name), columns)
        )
        # write-once like the partitions; also resets live tables of an earlier version, which
        # were updated in place (fillfactor 50, autovacuum on)
        conn.execute(
            sql.SQL("alter table raw.{} set (fillfactor = 100, autovacuum_enabled = false)").format(
                sql.Identifier(table.name)
            )
        )
        legacy = _set_aside_unpartitioned_snapshots(conn, table)
        conn.execute(
            sql.SQL(
                "create table if not exists raw.{} ({}, as_of date not null, "
                "loaded_at timestamptz not null, primary key (user_id, as_of)) partition by list (as_of)"
            ).format(sql.Identifier(table.snapshot_table), columns)
        )
        if legacy:
            _move_into_partitions(conn, table, legacy)
    conn.execute(
        "create table if not exists raw.ingest_log ("
        " as_of date not null, table_name text not null, source_file text not null,"
        " sha256 text not null, row_count bigint not null, loaded_at timestamptz not null,"
        " primary key (as_of, table_name))"
    )


def _set_aside_unpartitioned_snapshots(conn: psycopg.Connection, table: RawTable) -> str | None:
    """A database loaded before snapshots were partitioned: rename its snapshot table out of the
    way (the name of the renamed table, else None), so the partitioned one can take its place."""
    kind = conn.execute(
        "select c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'raw' and c.relname = %s",
        (table.snapshot_table,),
    ).fetchone()
    if kind is None or kind[0] != "r":
        return None
    legacy = f"{table.snapshot_table}_unpartitioned"
    conn.execute(
        sql.SQL("alter table raw.{} rename to {}").format(
            sql.Identifier(table.snapshot_table), sql.Identifier(legacy)
        )
    )
    return legacy


def _move_into_partitions(conn: psycopg.Connection, table: RawTable, legacy: str) -> None:
    """The old rows keep living, one partition per month. The dbt staging views on the old table
    go with it; the next `dbt build` recreates them."""
    months = conn.execute(sql.SQL("select distinct as_of from raw.{}").format(sql.Identifier(legacy)))
    for (as_of,) in months.fetchall():
        partition = sql.Identifier("raw", partition_name(table, as_of))
        conn.execute(
            sql.SQL("create table {} partition of raw.{} for values in ({})").format(
                partition, sql.Identifier(table.snapshot_table), sql.Literal(as_of)
            )
        )
    conn.execute(
        sql.SQL("insert into raw.{} select * from raw.{}").format(
            sql.Identifier(table.snapshot_table), sql.Identifier(legacy)
        )
    )
    conn.execute(sql.SQL("drop table raw.{} cascade").format(sql.Identifier(legacy)))
    print(f"raw.{table.snapshot_table}: partitioned by as_of (run dbt build to recreate its staging view)")


def _rename(conn: psycopg.Connection, old: str, new: str) -> None:
    """Rename a raw table and its primary key index, so that names never collide on the next load."""
    conn.execute(sql.SQL("alter table raw.{} rename to {}").format(sql.Identifier(old), sql.Identifier(new)))
    conn.execute(
        sql.SQL("alter index raw.{} rename to {}").format(
            sql.Identifier(f"{old}_pkey"), sql.Identifier(f"{new}_pkey")
        )
    )


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
    names = sql.SQL(", ").join(sql.Identifier(c) for c in table.header)
    incoming, month = sql.Identifier("raw", staged.incoming), sql.Literal(as_of)
    conn.execute(
        sql.SQL(
            # the check constraint lets ATTACH PARTITION skip scanning for rows of other months
            "create table {} ({}, as_of date not null default {month} check (as_of = {month}), "
            "loaded_at timestamptz not null default now()) {storage}"
        ).format(incoming, _columns_ddl(table), month=month, storage=WRITE_ONCE)
    )
    try:
        copy_sql = sql.SQL("copy {} ({}) from stdin (format csv, header true, freeze true)")
        with conn.cursor().copy(copy_sql.format(incoming, names)) as copy, checked.path.open("rb") as fh:
            while block := fh.read(1 << 20):
                copy.write(block)
    except psycopg.errors.DataError as exc:
        raise _copy_error(checked.path, exc) from None
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
    _rename(conn, staged.incoming, staged.partition)
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
    conn.execute(
        "insert into raw.ingest_log values (%s, %s, %s, %s, %s, now()) "
        "on conflict (as_of, table_name) do update set source_file = excluded.source_file, "
        "sha256 = excluded.sha256, row_count = excluded.row_count, loaded_at = excluded.loaded_at",
        (staged.as_of, table.name, str(staged.checked.path), staged.checked.sha256, staged.checked.rows),
    )


def _copy_error(path: Path, exc: psycopg.errors.DataError) -> IngestError:
    """What pandas cannot see (a short row) PostgreSQL's COPY reports; name it the same way."""
    context = exc.diag.context or ""
    line = re.search(r"line (\d+)", context)
    column = re.search(r'column "?(\w+)"?', exc.diag.message_primary or "")
    return IngestError(
        path,
        "row has too few fields" if "missing data" in str(exc) else (exc.diag.message_primary or str(exc)),
        line=int(line.group(1)) if line else None,
        column=column.group(1) if column else None,
    )


def load_month(month_dir: Path, as_of: date, target: settings.PgTarget | None = None) -> dict[str, int]:
    """Validate and load one month in one transaction; returns rows loaded per table. Each file is
    validated in a worker thread while the server COPYs the one before it; the first invalid file
    rolls the whole month back, so a bad month still changes nothing."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="validate") as pool:
        checks = _submit_checks(Path(month_dir), pool)
        try:
            database.ensure_database(target)
            with database.connect(target) as conn:
                conn.execute("select pg_advisory_xact_lock(hashtext('streamflow.ingest'))")
                # hash joins and primary-key builds over a million rows stay in memory
                conn.execute("set local work_mem = '256MB'")
                conn.execute("set local maintenance_work_mem = '512MB'")
                ensure_raw_tables(conn)
                staged = [_stage(conn, check.result()[0], as_of) for check in checks]
                for item in staged:
                    _publish(conn, item)
        finally:
            for check in checks:  # after a failure, do not validate the rest
                check.cancel()
    counts = {item.checked.table.name: item.checked.rows for item in staged}
    summary = ", ".join(f"{name} {rows:,}" for name, rows in counts.items())
    print(f"loaded {month_dir} as_of {as_of}: {summary} rows in {time.perf_counter() - started:.1f}s")
    return counts


def month_dirs(seeds_dir: Path) -> list[tuple[Path, date]]:
    """Every month_NNN folder in order, with the as_of its number implies."""
    found = sorted((int(m.group(1)), p) for p in Path(seeds_dir).iterdir() if (m := MONTH_DIR.match(p.name)))
    if not found:
        raise IngestError(Path(seeds_dir), "no month_NNN folders found")
    return [(path, month_end(number)) for number, path in found]


def load_all(seeds_dir: Path, target: settings.PgTarget | None = None) -> None:
    for month_dir, as_of in month_dirs(seeds_dir):
        load_month(month_dir, as_of, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--month-dir", type=Path, help="one month folder of CSV exports")
    group.add_argument("--seeds-dir", type=Path, help="a folder of month_NNN folders")
    parser.add_argument("--as-of", type=date.fromisoformat, help="as_of of --month-dir (YYYY-MM-DD)")
    args = parser.parse_args(argv)
    try:
        if args.month_dir:
            if args.as_of is None:
                match = MONTH_DIR.match(args.month_dir.name)
                if not match:
                    parser.error("--as-of is required unless the folder is named month_NNN")
                args.as_of = month_end(int(match.group(1)))
            load_month(args.month_dir, args.as_of)
        else:
            load_all(args.seeds_dir)
    except IngestError as exc:
        print(f"ingest aborted, nothing was written: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
