"""The read deadline (`serving.stores.base.within`): the answer in time, else TimeoutError on
time, whatever the read does when cancelled (psycopg spends up to 10 s cancelling a query on a
server that does not answer; that must not be the request's time)."""

from __future__ import annotations

import asyncio
import time

import pytest

from serving.stores.base import StoreUnavailable, within


async def _slow_to_cancel(cleanup_s: float, cleaned: list) -> int:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await asyncio.sleep(cleanup_s)  # like psycopg cancelling a query on a frozen server
        cleaned.append(True)
        raise
    return 1


async def _answer() -> int:
    await asyncio.sleep(0)
    return 7


def test_an_answer_in_time_is_returned():
    assert asyncio.run(within(1.0, _answer())) == 7


def test_an_error_of_the_read_is_raised_as_it_is():
    async def broken():
        raise ValueError("bad value")

    with pytest.raises(ValueError, match="bad value"):
        asyncio.run(within(1.0, broken()))


def test_the_deadline_holds_while_the_read_cleans_up_in_the_background():
    cleaned: list = []

    async def scenario() -> float:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await within(0.1, _slow_to_cancel(0.5, cleaned))
        waited = time.monotonic() - started
        assert not cleaned  # still cleaning up: nobody waited for it
        await asyncio.sleep(0.7)
        return waited

    waited = asyncio.run(scenario())
    assert waited < 0.4
    assert cleaned == [True]  # the read was cancelled, not abandoned


def test_a_cancelled_request_cancels_its_read():
    cleaned: list = []

    async def scenario() -> None:
        request = asyncio.ensure_future(within(10.0, _slow_to_cancel(0.0, cleaned)))
        await asyncio.sleep(0.05)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert cleaned == [True]


def test_a_redis_read_slow_to_cancel_ends_on_time_and_leaves_no_probe_stuck():
    """The Redis reader keeps the same deadline: a command that takes long to cancel (redis-py's
    cluster client was seen never to finish) ends the request on time, and the breaker is
    open, not wedged probing: the next probe is let through once its pause is over."""
    from serving.stores.redis import RedisReader
    from streamflow.online.redis_target import parse

    cleaned: list = []

    async def scenario() -> float:
        reader = RedisReader(parse("redis://127.0.0.1:1", cluster=False), "p", 4, 100)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await reader._call(lambda: _slow_to_cancel(1.0, cleaned))
        waited = time.monotonic() - started
        await asyncio.sleep(reader.breaker.retry_after)
        assert reader.breaker.before() is True  # this one probes: nobody else holds the probe
        await asyncio.sleep(1.2)
        return waited

    waited = asyncio.run(scenario())
    assert waited < 0.6
    assert cleaned == [True]
