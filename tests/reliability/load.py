"""A bounded HTTP load generator on loopback: N concurrent clients for a fixed time, alone or while
a fault runs beside it."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadReport:
    statuses: Counter = field(default_factory=Counter)
    slowest_s: float = 0.0
    requests: int = 0
    seconds: float = 0.0
    bodies: list = field(default_factory=list)
    problems: Counter = field(default_factory=Counter)  # the detail of each 503

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def _run(base: str, paths: list[str], seconds: float, concurrency: int, keep: Callable | None):
    report = LoadReport()
    cycle = itertools.cycle(paths)
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:

        async def worker():
            while time.monotonic() < deadline:
                path = next(cycle)
                sent = time.monotonic()
                try:
                    response = await client.get(path)
                    status = response.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                    response = None
                report.slowest_s = max(report.slowest_s, time.monotonic() - sent)
                report.statuses[status] += 1
                report.requests += 1
                if status == 503:
                    report.problems[response.json().get("detail")] += 1
                if keep is not None and response is not None and response.status_code == 200:
                    report.bodies.append(keep(path, response))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    report.seconds = time.monotonic() - started
    return report


def run_load(base: str, paths: list[str], seconds: float, concurrency: int = 16, keep=None) -> LoadReport:
    """Blocking: load `base` for `seconds` with `concurrency` clients cycling over `paths`."""
    return asyncio.run(_run(base, paths, seconds, concurrency, keep))


def load_through(base: str, paths: list[str], seconds: float, fault: Callable, after: float = 2.0, keep=None):
    """`seconds` of load on 16 connections while `fault()` runs from `after` seconds in; the load's
    report and what `fault` returned (say, the seconds until the API answered again)."""
    result = {}

    def chaos():
        time.sleep(after)
        result["fault"] = fault()

    thread = threading.Thread(target=chaos)
    thread.start()
    report = run_load(base, paths, seconds=seconds, concurrency=16, keep=keep)
    thread.join()
    return report, result["fault"]
