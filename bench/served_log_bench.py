"""What the served log (serving/served_log.py) costs the API, and how fast the replay checks it:
- our API on its memory path (warm, 1 worker, 16 connections) with the log off, at a 1 % sample
  (the default) and at 100 %, alternated round by round so each ratio sees the same machine;
- the replay of `rows` logged rows on the engine (PostgreSQL): the rows landed as the collector
  lands them (one spool file), then `replay()` timed;
- our API (memory warm, the log at its default sample) alone, and with a replay of `rows` rows
  running beside it in a process of its own (`streamflow replay-served`), alternated: what the
  replay costs the requests served meanwhile."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from bench import wrk
from bench.memory_bench import WARMUP_S, _alternating, _ours
from streamflow import config, engines, targets
from streamflow.processes import running

SAMPLES = {"off": "0", "1 %": "0.01", "100 %": "1"}


def cost(target: targets.PgTarget, ids: list[str], seconds: int, spool: Path, rounds: int = 2) -> None:
    print("\n== the served log's cost: our API, memory warm, log off / 1 % / 100 % (16 connections)")
    specs = {}
    for name, sample in SAMPLES.items():
        command, ready, env = _ours(target, "512")
        specs[f"log {name}"] = (
            command,
            ready,
            {**env, "SERVED_LOG_SAMPLE": sample, "SERVED_LOG_DIR": str(spool)},
        )
    off, one, every = _alternating(specs, ids, seconds, rounds, WARMUP_S)
    for name, runs in (("1 %", one), ("100 %", every)):
        ratio = [r.requests_per_s / o.requests_per_s for r, o in zip(runs, off, strict=True)]
        p99 = [r.p99_ms / o.p99_ms for r, o in zip(runs, off, strict=True)]
        print(
            f"  log {name} / off: req/s {' '.join(f'{x:.3f}' for x in ratio)} "
            f"(mean {statistics.mean(ratio):.3f}); "
            f"p99 {' '.join(f'{x:.2f}' for x in p99)} (mean {statistics.mean(p99):.2f})"
        )


def replay_speed(rows: int) -> None:
    """`rows` served rows (the stack's users over and over, with the values the store serves),
    landed as the collector lands a spool file, then replayed: every value compared."""
    from streamflow.features.store import feature_store
    from streamflow.served.replay import replay

    store = feature_store()
    engine = engines.current()
    table = _served_rows(store, engine, rows, datetime.now(UTC) - timedelta(minutes=5))
    started = time.perf_counter()
    engine.land_served("churn_api_v1", f"bench-{rows}-{time.time_ns()}", table)
    landed = time.perf_counter() - started
    started = time.perf_counter()
    replayed = replay(store)
    seconds = time.perf_counter() - started
    compared = sum(sum(c.values()) for c in replayed.by_feature().values())
    print(
        f"\n== replay: {replayed.rows:,} served rows ({compared:,} values) checked in {seconds:.1f}s "
        f"({replayed.rows / seconds:,.0f} rows/s; landing them took {landed:.1f}s); "
        f"skewed {replayed.defects():,}"
    )


def beside(target: targets.PgTarget, ids: list[str], seconds: int, spool: Path, rows: int, rounds: int = 2):
    from streamflow.features.store import feature_store

    print(f"\n== the replay beside the API: our API, memory warm, the log at its default; alone / with a "
          f"replay of {rows:,} rows beside it (16 connections)")  # fmt: skip
    store, engine = feature_store(), engines.current()
    command, ready, env = _ours(target, "512")
    env = {**env, "SERVED_LOG_DIR": str(spool)}
    results: dict[str, list] = {"alone": [], "beside": []}
    for round_number in range(rounds):
        for kind in ("alone", "beside") if round_number % 2 == 0 else ("beside", "alone"):
            if kind == "beside":  # landed before the load: the replay alone runs during it
                served = _served_rows(store, engine, rows, datetime.now(UTC) - timedelta(minutes=5))
                engine.land_served("churn_api_v1", f"beside-{time.time_ns()}", served)
            with running(command, ready, env) as base:
                wrk.run(base, ids, WARMUP_S)
                replay = None
                if kind == "beside":
                    replay = subprocess.Popen(
                        [sys.executable, "-m", "streamflow", "replay-served"], env=config.child_environment(),
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=config.PROJECT_ROOT,
                    )  # fmt: skip
                started, before = time.perf_counter(), _lookups(base)
                result = wrk.run(base, ids, seconds)
                after = _lookups(base)
                misses = after.get("miss", 0) - before.get("miss", 0)
                answered = sum(after.values()) - sum(before.values())
                if replay is not None:
                    still = replay.poll() is None
                    said = replay.communicate()[0].strip().splitlines()[-1:]  # its summary line
                    lasted = "outlasted" if still else "ended within"
                    waited = said[0].rpartition("(waited ")[2].split("s")[0] if said else "?"
                    took = time.perf_counter() - started
                    note = f"  replay {took:.1f}s ({waited}s waiting): {lasted} the load"
                else:
                    note = ""
                note += f"  from the store: {misses:,.0f} of {answered:,.0f}"
            results[kind].append(result)
            print(result.line(f"API {kind}", note), flush=True)
    p99 = [b.p99_ms / a.p99_ms for a, b in zip(results["alone"], results["beside"], strict=True)]
    rate = [
        b.requests_per_s / a.requests_per_s for a, b in zip(results["alone"], results["beside"], strict=True)
    ]
    print(f"  beside / alone: p99 {' '.join(f'{x:.2f}' for x in p99)} (mean {statistics.mean(p99):.2f}); "
          f"req/s {' '.join(f'{x:.3f}' for x in rate)} (mean {statistics.mean(rate):.3f})")  # fmt: skip


def _lookups(base: str) -> dict[str, float]:
    """The memory's lookups so far by outcome (hit, miss, outage): a miss went to the store."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:  # noqa: S310 (ours)
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "streamflow_cache_lookups":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["outcome"]] = sample.value
    return counts


def _served_rows(store, engine, rows: int, served_at: datetime) -> pa.Table:
    """The service's newest month as the API serves it (values, event times, statuses past the
    TTL), one row per user, repeated to `rows`, in the served log's schema."""
    service = store.get_feature_service("churn_api_v1")
    columns, joins = ["u.user_id"], []
    for i, projection in enumerate(service.feature_view_projections):
        view = store.get_feature_view(projection.name)
        mart, stamp = view.batch_source.get_table_query_string(), view.batch_source.timestamp_field
        joins.append(
            f"left join {mart} v{i} on v{i}.user_id = u.user_id"
            f" and v{i}.{stamp} = (select max({stamp}) from {mart})"
        )
        for feature in projection.features:
            name = f"{projection.name}__{feature.name}"
            columns += [f'v{i}."{feature.name}" as "{name}"', f'v{i}.{stamp} as "{name}__timestamp"',
                        f'case when v{i}.user_id is null then 3 else 4 end as "{name}__status"']  # fmt: skip
    users = "(select distinct user_id from features.subs_profile) u"
    newest = engine.read_query(f"select {', '.join(columns)} from {users} {' '.join(joins)}")
    newest = newest.cast(
        pa.schema([f.with_type(pa.int32()) if f.name.endswith("__status") else f for f in newest.schema])
    )
    table = newest.take(pa.array([i % newest.num_rows for i in range(rows)]))
    constant = {
        "__log_timestamp": (served_at, pa.timestamp("us", tz="UTC")),
        "__log_date": (served_at.date(), pa.date32()),
        "__request_id": ("bench", pa.string()),
        "__route": ("bench", pa.string()),
        "__generation": (None, pa.int64()),
        "__held": (False, pa.bool_()),
        "__from_memory": (False, pa.bool_()),
    }
    for name, (value, kind) in constant.items():
        table = table.append_column(name, pa.array([value] * rows, kind))
    return table
