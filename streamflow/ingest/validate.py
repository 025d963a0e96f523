"""Validation of a month's CSV exports, before anything is written.

A file passes a fast typed parse in Arrow's multithreaded reader with vectorised checks; only a
file that fails it gets the slow pandas pass that names the first bad cell's line and column.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from streamflow.exports import TABLES, USER_ID, USER_ID_RULE, RawTable

CHUNK_ROWS = 200_000

# What a non-blank cell of each kind must look like. Blank means unknown and loads as NULL.
CELL_PATTERNS = {
    "id": USER_ID,
    "text": r"[^\x00-\x1f]{1,200}",
    "bool": r"True|False",
    "int": r"[+-]?\d{1,18}",
    "float": r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?",
    "date": r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])",
}
KIND_NAMES = {
    "id": f"a user id ({USER_ID_RULE})",
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


def submit_checks(month_dir: Path, pool: ThreadPoolExecutor) -> list[Future]:
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
        return [future.result()[0] for future in submit_checks(month_dir, pool)]
