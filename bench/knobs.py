"""The benchmarks' knobs: environment variables of `make bench` alone, declared here (the
library's configuration, streamflow/config.py, carries only what the platform reads) and parsed
by the same rules: a bad value is one line naming the knob and what it accepts.
docs/development.md lists them (tests/unit/test_bench_harness.py holds the two together)."""

from __future__ import annotations

from typing import Any

from streamflow import config
from streamflow.config import Variable

A_NUMBER, NUMBERS = "a whole number >= 1", "numbers, a,b,c"
ONE_OR_MORE = config.whole(1)
# name, default, meaning, parse, what it accepts
_TABLE = (
    ("BENCH_SECONDS", "15", "seconds per load run", ONE_OR_MORE, A_NUMBER),
    ("BENCH_SIZES", "7043,100000", "users per pipeline run", config.whole_list, NUMBERS),
    ("BENCH_PARTS", "serving,redis,pipeline,incremental,flow,progress", "which benchmarks run", config.words,
     "names, a,b,c"),
    ("BENCH_REDIS_USERS", "1000000", "users of the Redis materialize run", ONE_OR_MORE, A_NUMBER),
    ("BENCH_INCREMENTAL_USERS", "200000", "users of the incremental run", ONE_OR_MORE, A_NUMBER),
    ("BENCH_SPARK_SIZES", "200000,1000000", "users of the engines' side-by-side run", config.whole_list,
     NUMBERS),
    ("BENCH_FEAST_SPARK", "12,1000000", "months and users of Feast's steps on each engine", config.whole_list,
     "numbers, months,users"),
    ("BENCH_DUCKDB", "12,1000000", "months and users of DuckDB beside the other engines (BENCH_PARTS=duckdb)",
     config.whole_list, "numbers, months,users"),
    ("BENCH_PROGRESS_USERS", "100000", "users of the progress display's cost run", ONE_OR_MORE, A_NUMBER),
    ("BENCH_SWEEP_USERS", "1000000", "users of the serving sweep (memory smaller than the data)", ONE_OR_MORE,
     A_NUMBER),
    ("BENCH_HISTORIES", "2,24", "months of history compared", config.whole_list, NUMBERS),
    ("BENCH_REPLAY_ROWS", "1000000", "served rows the replay checks (BENCH_PARTS=replay)", ONE_OR_MORE,
     A_NUMBER),
    ("BENCH_KEEP_DATABASES", "0", "keep the databases a run made (dropped at its end otherwise)", config.flag,
     "1 or 0"),
)  # fmt: skip
KNOBS = tuple(Variable(*row) for row in _TABLE)
(
    SECONDS, SIZES, PARTS, REDIS_USERS, INCREMENTAL_USERS, SPARK_SIZES, FEAST_SPARK, DUCKDB, PROGRESS_USERS,
    SWEEP_USERS, HISTORIES, REPLAY_ROWS, KEEP_DATABASES,
) = KNOBS  # fmt: skip


def get(knob: Variable) -> Any:
    return config.value_of(knob)


def check() -> None:
    """Parse every knob now: `make bench` refuses a bad one before it starts anything."""
    for knob in KNOBS:
        get(knob)
