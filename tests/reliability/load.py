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
    resent: int = 0  # GETs sent again once after the server closed an idle keep-alive connection
    from_memory: int = 0  # answers a worker gave from its memory while the store did not answer

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def _get(client: httpx.AsyncClient, path: str, report: LoadReport) -> httpx.Response:
    """A GET, sent again once if the server closed the connection before answering: a reused
    keep-alive connection the server timed out as the request went (RFC 9112 9.3.1: a client
    may retry an idempotent request then, as browsers and urllib3 do). The close shows as an
    empty answer or, when our request had reached the server's socket unread, as a reset
    (ReadError). A second close fails."""
    try:
        return await client.get(path)
    except (httpx.RemoteProtocolError, httpx.ReadError):
        report.resent += 1
        return await client.get(path)


async def _run(
    base: str,
    paths: list[str],
    seconds: float,
    concurrency: int,
    keep: Callable | None,
    busy: Callable[[], bool] = lambda: False,
):
    report = LoadReport()
    cycle = itertools.cycle(paths)
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:

        async def worker():
            while time.monotonic() < deadline or busy():
                path = next(cycle)
                sent = time.monotonic()
                try:
                    response = await _get(client, path, report)
                    status = response.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                    response = None
                report.slowest_s = max(report.slowest_s, time.monotonic() - sent)
                report.statuses[status] += 1
                report.requests += 1
                if status == 503:
                    report.problems[response.json().get("detail")] += 1
                if response is not None and "x-served-from" in response.headers:
                    report.from_memory += 1
                if keep is not None and response is not None and response.status_code == 200:
                    report.bodies.append(keep(path, response))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    report.seconds = time.monotonic() - started
    return report


def run_load(
    base: str, paths: list[str], seconds: float, concurrency: int = 16, keep=None, busy=lambda: False
) -> LoadReport:
    """Blocking: load `base` for `seconds` (and while `busy()`) with `concurrency` clients
    cycling over `paths`."""
    return asyncio.run(_run(base, paths, seconds, concurrency, keep, busy))


def hold(base: str, paths: list[str], timeout_s: float = 60.0) -> float:
    """The API's memory holds these users before a fault: each read twice (it keeps a user from its
    second read) once the memory is confirmed (its first confirmation empties it: on a busy
    machine, seen after the reads), until /metrics counts them held. Seen without it, with a
    second suite on the machine: no user held when the fault began (from_memory=0). Returns how
    many users the memory holds."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=base, timeout=10) as client:
        while time.monotonic() < deadline:
            if _gauge(client, "streamflow_cache_confirmed") == 1:
                for _ in range(2):
                    for path in paths:
                        assert client.get(path).status_code == 200, path
                entries = _gauge(client, "streamflow_cache_entries")
                if entries >= len(paths):
                    return entries  # users held now
            time.sleep(0.2)
    raise AssertionError(f"the API's memory did not hold {len(paths)} users within {timeout_s}s")


def _gauge(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return float("nan")


def load_through(base: str, paths: list[str], seconds: float, fault: Callable, after: float = 2.0, keep=None):
    """`seconds` of load on 16 connections while `fault()` runs from `after` seconds in, and on
    until a second after it returned, however long it took on a busy machine: the fault always
    falls inside the load. The load's report and what `fault` returned (say, the seconds until
    the API answered again)."""
    result = {}

    def chaos():
        try:
            time.sleep(after)
            result["fault"] = fault()
        except BaseException as exc:  # raised in the test's thread below
            result["error"] = exc
        finally:
            result["ended"] = time.monotonic()

    def busy() -> bool:
        return "ended" not in result or time.monotonic() < result["ended"] + 1.0

    thread = threading.Thread(target=chaos, daemon=True)
    thread.start()
    report = run_load(base, paths, seconds=seconds, concurrency=16, keep=keep, busy=busy)
    thread.join()
    if "error" in result:
        raise result["error"]
    return report, result["fault"]
