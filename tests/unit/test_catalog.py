"""The catalog's selection cache is bounded: keys of known names only, each name at most once,
at most 1,024 of them, whatever clients send."""

from __future__ import annotations

import itertools
import sys
from datetime import timedelta

import pytest

from serving.catalog import Catalog, UnknownSelection, ViewSpec

FEATURES = tuple(f"feature_{i}" for i in range(8))


def _catalog() -> Catalog:
    views = {
        "first": ViewSpec("first", timedelta(days=45), FEATURES[:4]),
        "second": ViewSpec("second", None, FEATURES[4:]),
    }
    return Catalog(views, {"all": (("first", FEATURES[:4]), ("second", FEATURES[4:]))})


def test_repeats_share_one_key_and_one_selection():
    catalog = _catalog()
    once = catalog.select("all", ["feature_1", "feature_5"])
    repeated = catalog.select("all", ["feature_1", "feature_5"] * 200)
    assert repeated is once
    assert repeated.feature_names == ("feature_1", "feature_5")
    assert len(catalog._selections) == 1


def test_unknown_names_are_refused_and_never_kept():
    catalog = _catalog()
    for n in range(100):
        with pytest.raises(UnknownSelection):
            catalog.select("all", [f"nope_{n}"])
    assert catalog._selections == {}


def test_the_cache_holds_at_most_1024_selections_of_bounded_size():
    catalog = _catalog()
    for order in itertools.islice(itertools.permutations(FEATURES, 5), 5000):
        assert set(catalog.select("all", list(order)).feature_names) == set(order)  # past the bound too
    assert len(catalog._selections) == 1024
    largest = max(sum(sys.getsizeof(name) for name in names) for _, names in catalog._selections)
    assert largest <= sum(sys.getsizeof(name) for name in FEATURES)


def test_a_frozen_registry_costs_each_request_its_wait_and_is_loaded_once(monkeypatch):
    """The catalog's first load hangs (a frozen database): each request gets its 503 after
    CATALOG_WAIT_S, one load runs meanwhile (not one thread per request), and its catalog is
    used as soon as the registry answers."""
    import asyncio
    import threading

    from serving import resources
    from serving.settings import ServingSettings
    from serving.stores.base import StoreUnavailable
    from streamflow import targets

    monkeypatch.setattr(resources, "CATALOG_WAIT_S", 0.2, raising=False)
    answered, loads = threading.Event(), []
    catalog = Catalog({}, {})

    def frozen_load() -> Catalog:
        loads.append(1)
        answered.wait(timeout=5)  # the watchdog: a load that never gave up returns by then
        return catalog

    api = resources.Resources(ServingSettings(database=targets.reader_target(), cache_mb=0))
    monkeypatch.setattr(api.registry, "load_catalog", frozen_load)

    async def requests() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(3):
            began = loop.time()
            with pytest.raises(StoreUnavailable):
                await api.catalog()
            assert loop.time() - began < 1.0
        assert len(loads) == 1
        answered.set()
        for _ in range(50):
            if api._loading.done():
                break
            await asyncio.sleep(0.02)
        assert await api.catalog() is catalog and len(loads) == 1

    asyncio.run(requests())
