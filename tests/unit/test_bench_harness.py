"""The benchmark harness on tiny inputs (no timing asserted): wrk reports parse, tables render."""

from __future__ import annotations

import re

import pytest

from bench import knobs, pipeline_bench, wrk
from streamflow import config

REPORT = """Running 3s test @ http://127.0.0.1:57003
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    88.38ms   23.35ms   1.20s    85.71%
  Latency Distribution
     50%   84.99ms
     75%   95.60ms
     90%  106.61ms
     99%    1.20s
  539 requests in 3.00s, 0.90MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:    179.50
"""


def test_wrk_report_is_parsed():
    result = wrk.parse(REPORT)
    assert result.requests_per_s == 179.5
    assert result.p50_ms == pytest.approx(84.99)
    assert result.p99_ms == pytest.approx(1200.0)
    assert (result.requests, result.non_2xx, result.socket_errors) == (539, 7, 3)


def test_a_report_without_latencies_is_an_error():
    with pytest.raises(RuntimeError, match="no latency distribution"):
        wrk.parse("Requests/sec: 1.0\n")


def test_lua_scripts_cycle_over_ids():
    get = wrk.SCRIPT % {"ids": "ids.txt", "request": wrk.GET_REQUEST % {"prefix": "/features/"}}
    assert 'io.lines("ids.txt")' in get and 'wrk.format("GET", "/features/" .. ids[i])' in get
    assert "i = i % #ids + 1" in get
    feast = wrk.SCRIPT % {"ids": "ids.txt", "request": wrk.FEAST_REQUEST}
    assert '"/get-online-features"' in feast and "churn_api_v1" in feast


def test_pipeline_table_renders_steps():
    steps = [pipeline_bench.Step("ingest", 1.234, 100.4, "note"), pipeline_bench.Step("dbt build", 2.0, 50.0)]
    frame = pipeline_bench.table({"10": steps})
    assert list(frame["step"]) == ["ingest", "dbt build"]
    assert list(frame["seconds"]) == [1.2, 2.0] and list(frame["peak MB"]) == [100, 50]


def test_step_figures_come_from_json_records_not_text():
    output = "\n".join(
        [
            "a human line: 1,234 users written x 5 views in 9.9s",
            '{"event": "month_materialized", "users": 7043, "seconds": 0.5}',
            '{"event": "month_materialized", "users": 10, "seconds": 0.25}',
            '{"event": "step_finished", "seconds": 3}',
        ]
    )
    months = pipeline_bench.records(output, "month_materialized")
    assert [r["users"] for r in months] == [7043, 10] and sum(r["seconds"] for r in months) == 0.75
    assert pipeline_bench.records(output, "monitored") == []


def test_the_knobs_are_listed_in_the_development_page_and_nowhere_in_the_library():
    page = (config.PROJECT_ROOT / "docs" / "development.md").read_text()
    table = page.split("### Benchmark knobs", 1)[1]
    listed = set(re.findall(r"^\| `(BENCH_[A-Z_]+)`", table, flags=re.M))
    assert listed == {knob.name for knob in knobs.KNOBS}
    assert not [name for name in config.VARIABLES if name.startswith("BENCH_")]


@pytest.mark.parametrize(
    ("knob", "bad"),
    [(knobs.SECONDS, "-1"), (knobs.SIZES, "7043,lots"), (knobs.REDIS_USERS, "1M"), (knobs.HISTORIES, ",")],
)
def test_a_bad_knob_is_one_line_naming_it(monkeypatch, knob, bad):
    monkeypatch.setenv(knob.name, bad)
    with pytest.raises(config.ConfigError) as refused:
        knobs.check()
    assert str(refused.value).startswith(f"{knob.name}=") and "expected" in str(refused.value)


def test_every_knobs_default_parses(monkeypatch):
    for knob in knobs.KNOBS:
        monkeypatch.delenv(knob.name, raising=False)
    knobs.check()
    assert knobs.get(knobs.SIZES) == [7043, 100000] and "serving" in knobs.get(knobs.PARTS)


def test_a_run_keeps_its_databases_only_when_asked(monkeypatch, capsys):
    """No server here: kept, nothing is dropped; the names are said."""
    from bench import stack

    monkeypatch.setattr(stack, "MADE", ["streamflow_bench", "streamflow_scale"])
    monkeypatch.setenv("BENCH_KEEP_DATABASES", "1")
    stack.leave_no_databases(keep=knobs.get(knobs.KEEP_DATABASES))
    assert "kept the databases this run made: streamflow_bench, streamflow_scale" in capsys.readouterr().out
    assert stack.MADE == ["streamflow_bench", "streamflow_scale"]
