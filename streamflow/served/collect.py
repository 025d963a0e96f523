"""The collector: the served log's closed spool files (written by the API's workers into
SERVED_LOG_DIR, serving/served_log.py) into the offline engine, each exactly once: the engine
records the file with its rows (on PostgreSQL, in the transaction that copies them), and the file
is removed only after. A collector stopped in between leaves a file the next one removes unread;
the database away leaves every file where it is."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from streamflow import config, engines

CLOSED = ".parquet"  # the API renames a file so once it is complete (`.open` while written)


def service_of(path: Path) -> str:
    """`<service>-<pid>-<id>.parquet`: the feature service its rows were served from."""
    return path.stem.rsplit("-", 2)[0]


def collect(folder: Path | None = None) -> dict[str, int]:
    """Every closed spool file into the engine, oldest first; rows landed per file."""
    folder = folder or config.served_log_dir()
    engine = engines.current()
    landed: dict[str, int] = {}
    files = sorted(folder.glob(f"*{CLOSED}"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    for path in files:
        landed[path.name] = engine.land_served(service_of(path), path.stem, pq.read_table(path))
        path.unlink()
    return landed
