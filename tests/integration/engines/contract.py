"""The offline engine contract (streamflow/engines/contract.py) as questions any engine answers:
run in a process of its own on the engine `OFFLINE_ENGINE` names (`python -m
tests.integration.engines.contract` prints the answers as JSON), so that a JVM-backed engine
stays out of the test process. test_engine_contract.py holds every registered engine's answers
to PostgreSQL's on the same exports."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pyarrow as pa

from streamflow import config, control, engines
from streamflow.engines.contract import OfflineEngine
from streamflow.features.store import feature_store, online_backend

MISSING_MART = "features.no_such_mart"


def _cell(value):
    if isinstance(value, datetime):  # an engine may hand UTC times over naive
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return value


def answers() -> dict:
    """Every question of the contract, asked of the engine in use; JSON-able answers."""
    engine = engines.current()
    store = feature_store()
    views = sorted(store.list_feature_views(), key=lambda v: v.name)
    marts = [v.batch_source.get_table_query_string().replace("`", "") for v in views]
    months = engine.event_timestamps(views)
    month = pa.Table.from_batches(list(engine.month_batches(views, months[-1])))
    kept = [name for name in month.column_names if not name.endswith("__created_ts")]  # now(): not data
    columns = [month.column(name).to_pylist() for name in kept]
    rows = sorted(
        (dict(zip(kept, map(_cell, row), strict=True)) for row in zip(*columns, strict=True)),
        key=lambda row: row["user_id"],
    )
    labelled = {
        m.isoformat(): engine.read_query(engine.labelled_entities([m])).num_rows
        for m in engine.mart_months("features.churn_labels")
    }
    online = online_backend(store)
    with control.connect() as conn, conn.transaction():  # the generic path over an unchanged month
        rewritten = OfflineEngine.materialize_month(engine, online, conn, store.config, views, months[-1])
    return {
        "missing": engine.marts_missing([*marts, MISSING_MART]),
        "mart_months": {mart: [m.isoformat() for m in engine.mart_months(mart)] for mart in marts},
        "event_timestamps": [_cell(m) for m in months],
        "month_columns": month.column_names,
        "month_rows": rows,
        "labelled": labelled,
        "generic_path_rewrote": rewritten,
    }


def ask(env: dict[str, str]) -> dict:
    """The answers of the engine `env` configures, from a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.engines.contract"],
        env=config.child_environment(env),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=config.PROJECT_ROOT,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(answers(), default=str))
