"""The collector: the served log's closed spool files (written by the API's workers into
SERVED_LOG_DIR, serving/served_log.py) into the offline engine, each exactly once: the engine
records the file with its rows (on PostgreSQL, in the transaction that copies them), and the file
is removed only after. A collector stopped in between leaves a file the next one removes unread;
the database away leaves every file where it is."""

from __future__ import annotations

from pathlib import Path

from streamflow import config, engines
from streamflow.served import spool


def collect(folder: Path | None = None) -> dict[str, int]:
    """Every closed spool file into the engine, oldest first; rows landed per file."""
    folder = folder or config.served_log_dir()
    engine = engines.current()
    landed: dict[str, int] = {}
    closed = folder.glob(f"*{spool.CLOSED}") if folder.is_dir() else []
    files = sorted(closed, key=lambda p: p.stat().st_mtime)
    for path in files:
        service, rows = spool.read(path)  # in Feast's feature-logging schema
        landed[path.name] = engine.land_served(service, path.stem, rows)
        path.unlink()
    return landed
