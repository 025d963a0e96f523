"""The reliability tier proves the default configuration: the API's memory is on here (the
default, SERVING_CACHE_MB=512), while the rest of the suite runs with it off. A test of the store
path itself (the pool, the breaker, queueing for connections) turns it off in its own server's
environment and says so."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def api_memory_on():
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SERVING_CACHE_MB", raising=False)
        yield
