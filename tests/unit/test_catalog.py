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
