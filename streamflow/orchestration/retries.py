"""When a step is tried again: only when a server did not answer (faults.py), FLOW_RETRIES times,
FLOW_RETRY_DELAY seconds before the first retry and doubling after each. A refused export, a failed
data test or a closed gate fails the run at once: another try would read the same data."""

from __future__ import annotations

from streamflow import config, faults


def delays() -> list[float]:
    first = config.get(config.FLOW_RETRY_DELAY)
    return [float(first * 2**attempt) for attempt in range(config.get(config.FLOW_RETRIES))]


def failed_with(state) -> BaseException | None:
    """The exception a failed Prefect state carries (the task engine builds the state from it)."""
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    try:
        found = state.result(raise_on_failure=False)
    except Exception as exc:  # a state whose result cannot be read: judge by what reading raised
        return exc
    return found if isinstance(found, BaseException) else None


def worth_retrying(task, task_run, state) -> bool:
    """Prefect's `retry_condition_fn`: retry a server that did not answer, nothing else."""
    exc = failed_with(state)
    return exc is not None and faults.is_transient(exc)
