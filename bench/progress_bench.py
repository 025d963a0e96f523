"""What the progress display costs: the same long steps with PROGRESS=off, a bar, and a JSON
record at every advance (PROGRESS_SECONDS=0, the most it can ever print), in alternating rounds on
the same data. Times are the steps' own (their records' seconds, or generation's wall time in this
process), so interpreter start-up does not blur a 2 % target."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.pipeline_bench import measured, records
from streamflow import config, progress, targets
from streamflow.generate import BLOCK, generate

ROUNDS = 3
MODES = {
    "off": {config.PROGRESS: "off"},
    "bar": {config.PROGRESS: "bar"},
    "records": {config.PROGRESS: "json", config.PROGRESS_SECONDS: "0"},  # the most it can write
}
TARGET = 1.02  # no step slower than 2 %


@contextlib.contextmanager
def _quietly(mode: dict[str, str]):
    """`mode`'s variables set, and whatever the display writes thrown away."""
    with (
        config.overridden(mode),
        open(os.devnull, "w") as sink,
        contextlib.redirect_stderr(sink),
        contextlib.redirect_stdout(sink),
    ):
        yield


def _generation_seconds(users: int, out: Path, mode: dict[str, str]) -> float:
    with _quietly(mode):
        started = time.perf_counter()
        generate(out, users, 2)
        return time.perf_counter() - started


def _one_round(seeds: Path, out_csv: Path, env: dict[str, str]) -> tuple[dict[str, float], dict[str, int]]:
    """Each step's own seconds, and how many progress records it wrote (its `advance` calls when
    every advance writes one)."""
    python = [sys.executable, "-m", "streamflow"]
    seconds, shown = {}, {}
    _, out = measured("ingest", [*python, "ingest", "--seeds-dir", str(seeds), "--force"], env)
    seconds["ingest (2 months)"] = sum(r["seconds"] for r in records(out, "month_loaded"))
    shown["ingest (2 months)"] = len(records(out, "progress"))
    measured("dbt build", [*python, "dbt", "build", "--quiet"], env)  # reopens materialize's gate
    _, out = measured("materialize", [*python, "materialize", "--full"], env)
    seconds["materialize (2 months)"] = sum(r["seconds"] for r in records(out, "month_materialized"))
    shown["materialize (2 months)"] = len(records(out, "progress"))
    _, out = measured("monitor", [*python, "monitor", "--full"], env)
    seconds["monitor (all view-months)"] = records(out, "monitored")[0]["seconds"]
    shown["monitor (all view-months)"] = len(records(out, "progress"))
    _, out = measured("training set", [*python, "training-set", "--out", str(out_csv)], env)
    seconds["training set"] = records(out, "training_set_written")[0]["seconds"]
    shown["training set"] = len(records(out, "progress"))
    return seconds, shown


def _seconds_per_advance(mode: dict[str, str], calls: int = 20_000) -> float:
    """One `advance` in this mode, on its own: the display's whole cost to a step is this times
    the step's calls (a record or a line when one is due included: PROGRESS_SECONDS=0 writes one
    at every call)."""
    with _quietly(mode), progress.task("bench", total=calls, unit="rows") as shown:
        started = time.perf_counter()
        for _ in range(calls):
            shown.advance(1, rows=1)
        return (time.perf_counter() - started) / calls


def run(users: int, workdir: Path, fresh_database: Callable[[str], targets.PgTarget]) -> None:
    print(f"\n== the progress display's cost: {users:,} users x 2 months, {ROUNDS} rounds, modes alternate")
    target = fresh_database("progress")
    base = {config.DATABASE_URL: target.url}
    seeds = workdir / f"progress_{users}"
    generate(seeds, users, 2)
    python = [sys.executable, "-m", "streamflow"]
    measured("ingest", [*python, "ingest", "--seeds-dir", str(seeds)], base)
    measured("dbt build", [*python, "dbt", "build", "--quiet"], base)
    measured("apply", [*python, "apply"], base)
    times: dict[str, dict[str, list[float]]] = {mode: {} for mode in MODES}
    names = list(MODES)
    for round_ in range(ROUNDS):
        for mode in names[round_ % len(names) :] + names[: round_ % len(names)]:
            found = {"generate (2 months)": _generation_seconds(users, workdir / "progress_gen", MODES[mode])}
            seconds, shown = _one_round(seeds, workdir / "progress_training.csv", {**base, **MODES[mode]})
            found |= seconds
            if mode == "records":
                calls = shown | {"generate (2 months)": -(-users // BLOCK)}
            for step, value in found.items():
                times[mode].setdefault(step, []).append(value)
    print(f"  {'step':<28}{'off s':>9}{'bar s':>9}{'records s':>11}{'bar/off':>9}{'records/off':>13}")
    worst = 0.0
    for step in times["off"]:
        off, bar, rec = (statistics.median(times[m][step]) for m in MODES)
        worst = max(worst, bar / off, rec / off)
        print(f"  {step:<28}{off:>9.2f}{bar:>9.2f}{rec:>11.2f}{bar / off:>9.3f}{rec / off:>13.3f}")
    print(f"  slowest step with a display / without, end to end: {worst:.3f}x (medians; noise included)")
    per_call = {name: _seconds_per_advance(mode) for name, mode in MODES.items() if name != "off"}
    print("  one advance: " + ", ".join(f"{name} {value * 1e6:.1f} us" for name, value in per_call.items()))
    bound = 0.0
    for step, count in calls.items():
        share = count * max(per_call.values()) / statistics.median(times["off"][step])
        bound = max(bound, share)
        print(f"  {step:<28}{count:>6} advances: at most {100 * share:.4f} % of the step")
    verdict = "met" if 1 + bound <= TARGET else "NOT met"
    print(f"  the display's cost, bounded from its calls: {100 * bound:.4f} % (target <= 2 %: {verdict})")
