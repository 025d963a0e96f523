"""What the API served, sampled, for the replay that holds it to the offline tables value by value
(streamflow/served/). No request waits on it:
- a request keeps a sample (`SERVED_LOG_SAMPLE`, a fraction) of the vectors it answers, each
  encoded at once to a JSON line by msgspec's C encoder (streamflow/served/spool.py: the format),
  into a bounded list (past `QUEUE_MAX` records, dropped and counted): no Python object per
  record outlives the request, and no flush has rows to shape;
- a background task appends the lines every `FLUSH_S` to one spool file per selection (a
  feature service, or the features a request named): one write of bytes to the page cache, on the
  event loop itself (a thread's hand-off and its fight for the GIL cost the p99 more than the
  write), small and often: every 0.1 s (every quarter second, the ~0.5 ms writes were the 100 %
  sample's p99), each closed (renamed from
  `.open` to `.jsonl`) every `ROLL_S` and at shutdown, for the collector, which shapes the rows
  into Feast's feature-logging schema as it loads them;
- the spool folder is bounded (`SERVED_LOG_MAX_MB`): past it, records are dropped and counted.
The API needs no database privilege for it, and an outage of the database loses nothing logged.

(The first version built Parquet row groups in the flush, in a thread: at a 100 % sample it held
the GIL for ~100 ms a second, 28 % of the requests per second and a p99 of 97 ms against 1.3 ms.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from serving import metrics
from serving.catalog import Selection
from serving.request_log import callers_request_id
from streamflow.served import spool

log = logging.getLogger("serving")
# At a 100 % sample, p99 / req/s against the log off: every 0.25 s 1.5x / 0.92; every 0.05 s
# 1.04-1.20x / 0.86-0.93; every 0.1 s 1.10x / 0.91 (docs/performance.md).
FLUSH_S = 0.1
SCAN_S = 1.0  # how often the spool folder's size is looked at
ROLL_S = 60.0
QUEUE_MAX = 100_000  # records a worker holds between flushes, at most


@dataclass
class Counts:
    logged: int = 0
    dropped_queue: int = 0
    dropped_disk: int = 0
    published: dict = field(default_factory=dict)

    def publish(self) -> None:
        """Into the metrics, by the difference since the last time (the hot path only adds)."""
        for outcome in ("logged", "dropped_queue", "dropped_disk"):
            now = getattr(self, outcome)
            if now > self.published.get(outcome, 0):
                metrics.SERVED_LOG.labels(outcome).inc(now - self.published.get(outcome, 0))
            self.published[outcome] = now


def parts_of(selection: Selection) -> spool.Parts:
    """What a selection serves, for the spool file's header: views, their features and types."""
    parts = []
    for view, features in selection.parts:
        kinds = dict(zip(view.features, view.types, strict=True))
        parts.append((view.name, [(feature, kinds[feature]) for feature in features]))
    return parts


@dataclass
class Spool:
    """One worker's open files (one per selection)."""

    folder: Path
    max_bytes: int
    files: dict[Selection, tuple[BinaryIO, Path]] = field(default_factory=dict)
    opened_at: float = field(default_factory=time.monotonic)
    counted: int = 0  # bytes in the folder at the last look, plus what this worker wrote since
    counted_at: float = -math.inf

    def used(self) -> int:
        """The folder's bytes (every worker's files, less what the collector took), looked at
        once a second at most: a flush every FLUSH_S would otherwise stat every file each time."""
        if time.monotonic() - self.counted_at >= SCAN_S:
            with os.scandir(self.folder) as entries:
                self.counted = sum(e.stat().st_size for e in entries if e.is_file())
            self.counted_at = time.monotonic()
        return self.counted

    def write(self, by_selection: dict[Selection, list[bytes]], counts: Counts) -> None:
        if self.used() >= self.max_bytes:
            counts.dropped_disk += sum(len(lines) for lines in by_selection.values())
            return
        for selection, lines in by_selection.items():
            if selection not in self.files:
                path = self.folder / f"{selection.service}-{os.getpid()}-{uuid.uuid4().hex[:12]}{spool.OPEN}"
                fh = path.open("wb")
                fh.write(spool.header(selection.service, parts_of(selection)))
                self.files[selection] = (fh, path)
            written = self.files[selection][0].write(b"\n".join(lines) + b"\n")
            self.counted += written
            counts.logged += len(lines)

    def roll(self, force: bool = False) -> None:
        """Close every file once it is ROLL_S old (or now): the collector takes closed files only."""
        if force or time.monotonic() - self.opened_at >= ROLL_S:
            for selection in list(self.files):
                fh, path = self.files.pop(selection)
                fh.close()
                path.rename(path.with_suffix(spool.CLOSED))
            self.opened_at = time.monotonic()

    def flush(self, by_selection: dict[Selection, list[bytes]], counts: Counts, force_roll: bool) -> None:
        if by_selection:
            self.write(by_selection, counts)
        for fh, _ in self.files.values():
            fh.flush()  # on disk for the collector once closed, and for the bound's count meanwhile
        self.roll(force_roll)


class ServedLog:
    """Per worker: `keep` on the hot path, `run` as a background task."""

    def __init__(self, folder: Path, sample: float, max_mb: int):
        self.sample = sample
        self.pending: dict[int, list[bytes]] = {}  # lines by selection (its id) since the last flush
        self.selections: dict[int, Selection] = {}
        self.queued = 0
        self.counts = Counts()
        folder.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(folder, max_mb << 20)
        self._ids = map(f"{uuid.uuid4().hex[:16]}-{{}}".format, itertools.count())  # unique, cheap

    def keep(self, route: str, request, selection: Selection, vectors, generation: int | None) -> None:
        """Called by a route with what it answers; costs a random() unless the request is sampled."""
        if self.sample < 1.0 and random.random() >= self.sample:  # noqa: S311 (sampling, not secrets)
            return
        if self.queued >= QUEUE_MAX:
            self.counts.dropped_queue += len(vectors)
            return
        served_at = time.time_ns() // 1000
        caller = callers_request_id(request.scope)
        request_id = caller.decode() if caller is not None else next(self._ids)
        lines = self.pending.get(id(selection))  # by identity: the catalog keeps its selections
        if lines is None:
            lines = self.pending[id(selection)] = []
            self.selections[id(selection)] = selection
        names, views = selection.feature_names, selection.view_names
        for v in vectors:
            values, status = v.features, v.views
            lines.append(
                spool.line(served_at, request_id, route, generation, v.user_id, v.from_memory, v.held,
                           [values.get(name) for name in names],
                           [(s.event_timestamp, s.status) if (s := status.get(view)) is not None else None
                            for view in views])
            )  # fmt: skip
        self.queued += len(vectors)

    async def flush(self, force_roll: bool = False) -> None:
        pending, selections = self.pending, self.selections
        self.pending, self.selections, self.queued = {}, {}, 0
        by_selection: dict[Selection, list[bytes]] = {}
        for key, lines in pending.items():  # two equal selections (a catalog reloaded) share a file
            by_selection.setdefault(selections[key], []).extend(lines)
        self.spool.flush(by_selection, self.counts, force_roll)

    async def run(self, stop: asyncio.Event) -> None:
        """Every FLUSH_S until `stop`, then the last records and every file closed."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), FLUSH_S)
            try:
                await self.flush(force_roll=stop.is_set())
            except Exception as exc:  # a full disk, say: the records of this flush are lost
                log.warning("served log: flush failed (%s)", type(exc).__name__)
            self.counts.publish()
