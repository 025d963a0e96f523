"""Work beside the API waits for room between its slices (streamflow/background.py): only when it
yields, until the machine's CPUs have room, and never past its bound."""

from __future__ import annotations

import os

import pytest

from streamflow import background


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(background, "SAMPLE_S", 0.01)


def _looks(shares: list[float]):
    seen = iter(shares)
    calls: list[float] = []

    def look() -> float:
        calls.append(share := next(seen))
        return share

    return look, calls


def test_a_process_that_does_not_yield_never_waits(quick):
    look, calls = _looks([0.0] * 100)
    assert background.wait_for_room(look) == 0.0 and calls == []


def test_a_yielding_process_waits_while_the_machine_is_busy(quick, monkeypatch):
    monkeypatch.setattr(background, "_yielding", True)
    look, calls = _looks([0.05, 0.2, background.room() + 0.1, 0.0])
    background.wait_for_room(look)
    assert len(calls) == 3  # busy, busy, room: no fourth look


def test_the_wait_is_bounded_under_a_load_that_never_ends(quick, monkeypatch):
    monkeypatch.setattr(background, "_yielding", True)
    look, _ = _looks([0.0] * 10_000)
    waited = background.wait_for_room(look, max_wait_s=0.2)
    assert 0.2 <= waited < 5


def test_the_idle_cpus_are_read_off_the_machine():
    assert 0.0 <= background.idle_cpus(0.05) <= os.cpu_count()
