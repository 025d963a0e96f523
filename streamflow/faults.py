"""Which failures are transient and which are not. A server that did not answer (PostgreSQL, Redis, Spark)
is worth another try later: a command exits 3 and the Prefect flow retries the step with backoff.
Everything else (a refused export, a failed data test, a closed gate, a bug) fails for good."""

from __future__ import annotations

import psycopg


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """What the library raises when a server does not answer, or drops us mid-step (imported late:
    a command's `--help` stays fast)."""
    from streamflow import engines, online

    # psycopg's OperationalError: a connection refused, closed by a restart, or timed out
    return (psycopg.OperationalError, *engines.unreachable_errors(), *online.unreachable_errors())


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or what it was raised from) is a server that did not answer."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, unreachable_errors()):
            return True
        seen = seen.__cause__
    return False
