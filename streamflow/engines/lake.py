"""The lake every lake engine reads (Spark, DuckDB): a folder (`LAKE_DIR`) of Parquet. A validated
month lands in it as one Parquet partition per table, Hive-style
(`raw/<table>_snapshots/as_of=YYYY-MM-DD/`, as Spark and DuckDB discover them), and its line in
the ingest log in PostgreSQL (the same log, the same checksum skip, as the PostgreSQL engine).

No JVM here: the validator's own typed Arrow read is what is written, by pyarrow. Every file of
the month is validated, then every partition written to a hidden folder (Spark skips names
starting with "."), then each swapped into place under the ingest lock and the log written in one
transaction: a bad export leaves the lake untouched, a restatement replaces its one partition."""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streamflow import config, database, logs, progress, targets
from streamflow.control import job_lock, locks
from streamflow.control.ingest_log import ensure_ingest_log, record_load
from streamflow.exports import TABLES, RawTable
from streamflow.ingest.load import already_loaded, announce_loaded, announce_skipped
from streamflow.ingest.validate import CheckedFile, check_month, read_typed

# Folders hidden from Spark by their leading dot: a partition being written, one being replaced.
INCOMING, RETIRED = ".incoming-", ".retired-"
_OWNER = f"{socket.gethostname()}-{os.getpid()}"  # whose incoming folder: left by a dead process?


def lake_dir() -> Path:
    return Path(config.get(config.LAKE_DIR) or targets.STATE_DIR / "lake").resolve()


def raw_dir() -> Path:
    return lake_dir() / "raw"


def partition_dir(table: RawTable, as_of: date) -> Path:
    return raw_dir() / table.snapshot_table / f"as_of={as_of.isoformat()}"


def _write_hidden(checked: CheckedFile, as_of: date, loaded_at: datetime) -> Path:
    data = read_typed(checked.content, checked.table, checked.columns)  # the bytes validated
    # one scalar repeated, not a list of a million datetimes (0.4 s a file)
    stamp = pa.repeat(pa.scalar(loaded_at, pa.timestamp("us", tz="UTC")), data.num_rows)
    data = data.append_column("loaded_at", stamp)
    folder = f"{INCOMING}{as_of.isoformat()}-{_OWNER}-{uuid.uuid4().hex[:8]}"
    hidden = raw_dir() / checked.table.snapshot_table / folder
    hidden.mkdir(parents=True)
    written = hidden / "part-00000.parquet"
    pq.write_table(data, written, compression="snappy")
    sync(written)  # on disk before the swap makes it the month
    sync(hidden)
    return hidden


def sync(path: Path) -> None:
    """fsync a file or a folder (a folder's fsync makes the renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_in(hidden: Path, final: Path) -> None:
    """The new partition in place of the old one: two renames, the old folder removed after.
    Between the renames the month has no partition; `recover` puts the old one back."""
    retired = None
    if final.exists():
        retired = final.with_name(f"{RETIRED}{final.name}-{uuid.uuid4().hex[:8]}")
        final.rename(retired)
    hidden.rename(final)
    sync(final.parent)
    if retired is not None:
        shutil.rmtree(retired)


def _left_by_the_dead(incoming: str) -> bool:
    """An incoming folder whose writer, on this host, is no longer running."""
    owner, _, pid = incoming.rsplit("-", 1)[0].rpartition("-")  # the random suffix dropped
    if not owner.endswith(f"-{socket.gethostname()}") or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover() -> list[Path]:
    """Finish what a killed load left (called before the lake is read or written): its incoming
    folders are removed; a retired partition whose month has none is put back (the swap's
    transaction never committed, so the log still names the old files), one beside its
    replacement is removed. Under the ingest lock, so a swap in progress is never mistaken for a
    killed one. Returns the partitions put back."""
    for folder in raw_dir().glob(f"*/{INCOMING}*"):
        if _left_by_the_dead(folder.name):
            shutil.rmtree(folder)
    if not any(raw_dir().glob(f"*/{RETIRED}*")):  # the usual case: no lock, no connection
        return []
    restored = []
    with database.connect() as conn:
        locks.hold_ingest(conn)
        for retired in sorted(raw_dir().glob(f"*/{RETIRED}*")):
            final = retired.with_name(retired.name.removeprefix(RETIRED).rsplit("-", 1)[0])
            if final.exists():
                shutil.rmtree(retired)
            else:
                retired.rename(final)
                sync(final.parent)
                restored.append(final)
    for final in restored:
        logs.say(f"put back {final} (a swap was cut short)", event="partition_restored")
    return restored


def load_month(month_dir: Path, as_of: date, force: bool = False) -> dict[str, int]:
    month_dir = Path(month_dir)
    recover()
    landed = all(partition_dir(table, as_of).is_dir() for table in TABLES)
    if not force and landed and month_dir.is_dir() and already_loaded(month_dir, as_of):
        announce_skipped(month_dir, as_of, "in the lake already")
        return {}
    started = time.perf_counter()
    checked = check_month(month_dir)  # raises IngestError: nothing written
    loaded_at = datetime.now(UTC)
    hidden: list[Path] = []
    try:
        with progress.task(f"ingest {month_dir.name}", total=len(checked), unit="files") as shown:
            for item in checked:
                hidden.append(_write_hidden(item, as_of, loaded_at))
                shown.advance(rows=item.rows)
        database.ensure_database()
        with database.connect() as conn:
            locks.hold_ingest(conn)
            job_lock.fence(conn)  # before the swap: a run that lost its lock changes nothing
            ensure_ingest_log(conn)
            for item in checked:
                record_load(conn, as_of, item.table, str(item.path), item.sha256, item.rows)
            for item, folder in zip(checked, hidden, strict=True):
                _swap_in(folder, partition_dir(item.table, as_of))
    finally:
        for folder in hidden:
            if folder.exists():
                shutil.rmtree(folder)
    counts = {item.table.name: item.rows for item in checked}
    announce_loaded(month_dir, as_of, counts, time.perf_counter() - started, into=" into the lake")
    return counts
