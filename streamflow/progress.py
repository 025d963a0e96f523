"""How far a long step is: generation (users), ingest (files, rows), materialize (months, users),
training sets (rows) and monitoring (view-months).

Where it goes depends on who is watching (`PROGRESS`, default `auto`):
- a terminal (stderr is a TTY): a tqdm bar that redraws in place and is gone when the step ends
  (the step's own summary line follows, as before);
- not a terminal (a CI log, cron, a pipe): a plain line on stdout at most every `PROGRESS_SECONDS`,
  none for a step shorter than that, so short runs log exactly what they did before;
- `LOG_FORMAT=json`: a `progress` record (task, done, total, unit, the counters, seconds) instead.

Off the hot path by construction: the steps call `advance` once per file, block, month or Arrow
batch, never per row, and a call costs an addition and a clock read unless a line is due.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Iterator
from typing import Any

from streamflow import config, logs


def mode() -> str:
    """The display the environment asks for; `auto` resolved: json, bar or lines."""
    chosen = config.get(config.PROGRESS)
    if chosen != "auto":
        return chosen
    if logs.json_enabled():
        return "json"
    return "bar" if _stderr_is_terminal() else "lines"


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams (a test's capture, a daemon)
        return False


class Tracker:
    """One task's count (`done` of `total` units) and its side counters (rows, users)."""

    def __init__(self, name: str, total: int | None, unit: str, display: str, every: float):
        self.name, self.total, self.unit, self.display, self.every = name, total, unit, display, every
        self.done = 0
        self.counters: dict[str, int] = {}
        self.status = ""
        self.started = self.last_shown = time.monotonic()
        self.bar: Any = None
        if display == "bar":
            from tqdm import tqdm  # only a terminal pays for the import

            self.bar = tqdm(
                total=total, desc=name, unit=f" {unit}", file=sys.stderr, leave=False, dynamic_ncols=True
            )

    def advance(self, units: int = 1, **counters: int) -> None:
        """`units` more done; `counters` (rows=, users=) add to their running totals."""
        self.done += units
        for key, value in counters.items():
            self.counters[key] = self.counters.get(key, 0) + value
        if self.bar is not None:
            if counters:
                self.bar.set_postfix_str(self._counters(), refresh=False)
            self.bar.update(units)
        elif self.display in ("lines", "json") and time.monotonic() - self.last_shown >= self.every:
            self._show()

    def note(self, status: str) -> None:
        """What the task is doing now that no count describes (publishing, writing the file)."""
        self.status = status
        if self.bar is not None:
            self.bar.set_postfix_str(", ".join(filter(None, [self._counters(), status])))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _counters(self) -> str:
        return ", ".join(f"{key} {value:,}" for key, value in self.counters.items())

    def _show(self) -> None:
        self.last_shown = time.monotonic()
        seconds = round(self.last_shown - self.started, 1)
        if self.display == "json":
            logs.json_logger("streamflow.progress").info(
                "progress",
                extra={
                    "event": "progress",
                    "task": self.name,
                    "done": self.done,
                    "total": self.total,
                    "unit": self.unit,
                    "seconds": seconds,
                    **self.counters,
                },
            )
            return
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        of = f"/{self.total:,}" if self.total is not None else ""
        extra = "".join(f", {part}" for part in (self._counters(), self.status) if part)
        print(f"  {self.name}: {self.done:,}{of} {self.unit}{share}{extra}, {seconds:.0f}s", flush=True)


class _AboveBar(io.TextIOBase):
    """stdout while a bar is drawn: each printed line lifts the bar, is written, and the bar is
    drawn again under it, so a step's own lines (a month materialized) never tear the bar."""

    def __init__(self, bar: Any, stream):
        self.bar, self.stream, self.pending = bar, stream, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        if "\n" in self.pending:
            complete, _, self.pending = self.pending.rpartition("\n")
            self.bar.clear()
            self.stream.write(complete + "\n")
            self.stream.flush()
            self.bar.refresh()
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.write("\n")


@contextlib.contextmanager
def task(name: str, total: int | None = None, unit: str = "") -> Iterator[Tracker]:
    """A long step's progress, shown the way `mode()` says; `total` None when not known ahead."""
    display = mode()
    tracker = Tracker(name, total, unit, display, config.get(config.PROGRESS_SECONDS))
    try:
        if tracker.bar is None:
            yield tracker
        else:
            above = _AboveBar(tracker.bar, sys.stdout)
            with contextlib.redirect_stdout(above):
                yield tracker
            above.flush()
    finally:
        tracker.close()
