"""The exit codes of every command (`streamflow`, `python -m serving`), one table (docs/commands.md)."""

from enum import IntEnum


class Exit(IntEnum):
    DONE = 0  # the work is done
    FAILED = 1  # the work ran and failed (a dbt test, skew found, no rows)
    USAGE = 2  # bad arguments or configuration: nothing was tried
    UNREACHABLE = 3  # PostgreSQL, Redis or the registry did not answer: try again later
    REFUSED = 4  # refused by a gate: a bad export, a failed build, another run holding the lock
