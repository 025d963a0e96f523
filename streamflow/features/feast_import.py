"""Feast imported for reading: without typeguard's instrumentation of its classes.

Feast decorates its definition classes (FeatureView, DataSource, FeatureService, ...) with
typeguard's `@typechecked`, which parses and recompiles every method of them at import: 1.8 s of
Feast's 2.5 s import, paid again by every process that imports Feast (materialize, monitor, a
training set, the skew check). The checks it adds guard the arguments of those constructors, that
is a feature repository's Python definitions, which only `feast apply` evaluates; the commands
that read the registry rebuild the objects from Feast's own protos. Typeguard's own switch is
Python's optimized mode (`-O`), which would also drop every assert of every library: so only
Feast's import goes without it, and `apply` keeps the checks (it imports Feast as it is).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


def _as_is(target: Any = None, **_options: Any) -> Any:
    """typeguard.typechecked's signature (bare or with options), leaving its target as it is."""
    return target if target is not None else _as_is


@contextlib.contextmanager
def _typeguard_off() -> Iterator[None]:
    import typeguard

    typechecked = typeguard.typechecked
    typeguard.typechecked = _as_is  # Feast's modules bind it at their import
    try:
        yield
    finally:
        typeguard.typechecked = typechecked


def import_for_reading() -> bool:
    """Import Feast without the checks of its definitions' arguments, for a command that reads
    the registry only; False when Feast was imported already (as it was: checked)."""
    if "feast" in sys.modules:
        return False
    with _typeguard_off():
        import feast  # noqa: F401 - the import is the point

    return True
