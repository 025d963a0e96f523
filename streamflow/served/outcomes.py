"""What one served value is, held to the offline answer for the same user at the time it was
served: the rules of the replay (replay.py), in one place.

The offline answer is the mart's row of the newest month at or before the served time (no TTL:
the API serves a value past its view's TTL, marked stale, and Feast's point-in-time join would
hide it; here the value is compared and the status is held to the TTL). Only `skew` is a defect:
- equal: the same month, the same value (doubles to 1e-9, NULL = NULL), the same status;
- lag: the offline side has a month the online store had not been given yet at that time (the
  months log: by view, whatever its layout, so a view changed by `feast apply` and not refilled
  is skew, not lag);
- restated: the month's exports were loaded again after the value was served (the ingest log);
- memory: answered from a worker's memory while the store did not answer (the API marks it);
- skew: anything else: a different value, a value on one side only, a status the TTL denies.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

EQUAL, SKEW, LAG, RESTATED, MEMORY = "equal", "skew", "lag", "restated", "memory"
OUTCOMES = (EQUAL, SKEW, LAG, RESTATED, MEMORY)
# Feast's FieldStatus, as the served log records it
NOT_SERVED, PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE = 0, 1, 2, 3, 4
TOLERANCE = 1e-9


def same_value(served, offline) -> bool:
    if served is None or offline is None:
        return served is None and offline is None
    if isinstance(served, float) or isinstance(offline, float):
        a, b = float(served), float(offline)
        return a == b or math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    return served == offline


def expected_status(offline_ts: datetime | None, value, served_at: datetime, ttl: timedelta | None) -> int:
    """The status Feast's rules give the offline answer: no row, past the TTL, NULL, present."""
    if offline_ts is None:
        return NOT_FOUND
    if ttl is not None and served_at - offline_ts > ttl:
        return OUTSIDE_MAX_AGE
    return NULL_VALUE if value is None else PRESENT


def outcome(
    *,
    served_at: datetime,
    served_ts: datetime | None,
    served_value,
    served_status: int,
    offline_ts: datetime | None,
    offline_value,
    ttl: timedelta | None,
    from_memory: bool,
    given_at: datetime | None,
    reloaded_at: datetime | None,
) -> str:
    """One served value's outcome. `given_at`: when the online store was first given the offline
    answer's month of this view (None: never); `reloaded_at`: when that month's exports were last
    loaded."""
    status = expected_status(offline_ts, offline_value, served_at, ttl)
    if served_ts == offline_ts and same_value(served_value, offline_value) and served_status == status:
        return EQUAL
    if from_memory:
        return MEMORY
    older = offline_ts is not None and (served_ts is None or served_ts < offline_ts)
    if older and (given_at is None or given_at > served_at):
        return LAG  # the store had not been given the offline month yet
    same_month = served_ts is not None and served_ts == offline_ts
    if same_month and reloaded_at is not None and reloaded_at > served_at:
        return RESTATED
    return SKEW
