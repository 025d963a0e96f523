"""Prometheus multiprocess mode, set up before anything imports prometheus_client.

With several uvicorn workers each process counts its own requests; prometheus_client's
multiprocess mode aggregates them through files in PROMETHEUS_MULTIPROC_DIR. Feast also switches
this mode on when imported, so the directory must be ours and set first.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from scripts.settings import STATE_DIR


def prepare(fresh: bool = False) -> Path:
    """Point PROMETHEUS_MULTIPROC_DIR at this server's folder; `fresh` empties it (at server start)."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or STATE_DIR / "prometheus" / str(os.getpid()))
    if fresh and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path
