"""The alerting rules shipped in deploy/prometheus/, checked by Prometheus' own `promtool` (Debian's
`prometheus` package; `.ci/run` installs it): valid rules and scrape configs, every alert firing
in its test case (alerts_test.yml); Alertmanager's routing checked by `amtool` (Debian's
`prometheus-alertmanager`); every PromQL expression of the rules and of the Grafana
dashboard valid and reading only metrics the API exports; and a real Prometheus scraping the API
through compose's scrape configuration with the API's bearer token."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from serving import metrics
from streamflow import targets
from streamflow.processes import running
from tests.support import api_server

RULES_DIR = targets.PROJECT_ROOT / "deploy" / "prometheus"


DEPLOY = targets.PROJECT_ROOT / "deploy"
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
                "group_right", "inf", "nan"}  # fmt: skip


def _tool(name: str, package: str, *args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess:
    binary = shutil.which(name)
    if binary is None:
        pytest.fail(f"{name} not found: apt-get install {package} (.ci/run installs it)")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess:
    return _tool("promtool", "prometheus", *args, cwd=cwd)


def amtool(*args: str) -> subprocess.CompletedProcess:
    return _tool("amtool", "prometheus-alertmanager", *args, cwd=DEPLOY / "alertmanager")


def as_compose_runs_it(folder: Path, token: str) -> Path:
    """deploy/prometheus as compose's Prometheus runs from it: copied, the API's token written
    beside the copy (the service's entrypoint, docker-compose.yml)."""
    copy = folder / "prometheus"
    shutil.copytree(RULES_DIR, copy)
    (copy / "api_token").write_text(token)
    return copy


def test_the_rules_and_both_scrape_configs_are_valid(tmp_path):
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = promtool("check", "config", "prometheus-compose.yml", cwd=as_compose_runs_it(tmp_path, ""))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_fires_in_its_test_case():
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    cases = yaml.safe_load((RULES_DIR / "alerts_test.yml").read_text())["tests"]
    fired = {check["alertname"] for case in cases for check in case["alert_rule_test"] if check["exp_alerts"]}
    quiet = {
        check["alertname"] for case in cases for check in case["alert_rule_test"] if not check["exp_alerts"]
    }
    assert fired == alerts, "every alert fires in a test case"
    assert quiet == alerts, "and is seen not firing before its time or outside its case"


def exported_metrics() -> set[str]:
    """Every metric name the API's /metrics carries (serving/metrics.py), as PromQL names them."""
    from prometheus_client.metrics import MetricWrapperBase

    declared = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    names = {m._name for m in declared if m._type == "gauge"}
    names |= {f"{m._name}_total" for m in declared if m._type == "counter"}
    names |= {f"{metrics.REQUESTS_NAME}_total"}
    names |= {f"{metrics.LATENCY_NAME}{suffix}" for suffix in ("", "_bucket", "_sum", "_count")}
    return names


def test_the_rules_read_only_metrics_the_api_exports():
    exported = exported_metrics()
    read = set(re.findall(r"\bstreamflow_[a-z_]+", (RULES_DIR / "alerts.yml").read_text()))
    assert read and read <= exported, read - exported
    assert {"streamflow_job_last_run_failed", "streamflow_skew_ratio"} <= read


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: its identifiers less strings, label matchers,
    ranges, grouping clauses, functions and keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        follows = text[match.end() :].lstrip()[:1]
        if follows != "(" and match.group() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "streamflow.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_promql_expression_is_valid_and_reads_only_exported_metrics(tmp_path):
    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]] + dashboard_exprs()
    as_rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel{i}", "expr": expr} for i, expr in enumerate(dashboard_exprs())
    ]}]}  # fmt: skip
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(as_rules))
    checked = promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr  # promtool parses each one
    read = set().union(*(metric_names(expr) for expr in exprs))
    assert read - {"up"} <= exported_metrics(), read - exported_metrics()
    assert metric_names('sum by (route) (rate(streamflow_nope_total{a="b"}[5m])) > on() x') == {
        "streamflow_nope_total", "x"
    }  # fmt: skip
    wanted = {"streamflow_requests_total", "streamflow_request_duration_seconds_bucket",
              "streamflow_cache_lookups_total", "streamflow_feature_view_latest_event_timestamp_seconds",
              "streamflow_feature_drift_js_distance", "streamflow_skew_ratio",
              "streamflow_job_last_success_timestamp_seconds",
              "streamflow_job_step_duration_seconds"}  # fmt: skip
    assert wanted <= set().union(*(metric_names(e) for e in dashboard_exprs())), "the dashboard shows each"


def test_alertmanager_routes_each_severity_to_its_receiver():
    checked = amtool("check-config", "alertmanager.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    severities = {rule["labels"]["severity"] for group in rules["groups"] for rule in group["rules"]}
    assert severities == {"critical", "warning"}
    for severity, receiver in (("critical", "oncall"), ("warning", "team")):
        routed = amtool("config", "routes", "test", "--config.file=alertmanager.yml", f"severity={severity}")
        assert routed.stdout.strip() == receiver, routed.stdout + routed.stderr


JOB = "streamflow-api"


def _query(prometheus: str, promql: str) -> list[dict]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (our own server)
        return json.load(response)["data"]["result"]


def _until(prometheus: str, promql: str, value: str, timeout: float = 60) -> None:
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        seen = [r["value"][1] for r in _query(prometheus, promql)]
        if seen == [value]:
            return
        time.sleep(0.5)
    pytest.fail(f"{promql} stayed {seen}, never {value}")


def test_prometheus_scrapes_the_api_with_its_bearer_token(store, fresh_db, tmp_path):
    """Prometheus scrapes the API as compose's does (prometheus-compose.yml, prepared as the
    service's entrypoint prepares it), its target the API started with STREAMFLOW_API_TOKEN: a
    wrong token is a failed scrape (`up` 0); the API's own, written into the same file, is read
    at the next scrape (`up` 1, the API's metrics stored), no restart."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: apt-get install prometheus (.ci/run installs it)"
    token = secrets.token_urlsafe(24)
    with api_server(fresh_db.url, extra_env={"STREAMFLOW_API_TOKEN": token}) as api:
        folder = as_compose_runs_it(tmp_path, "not-the-token")
        config_file = folder / "prometheus-compose.yml"
        configured = yaml.safe_load(config_file.read_text())
        job = next(j for j in configured["scrape_configs"] if j["job_name"] == JOB)
        job["static_configs"] = [{"targets": [urlsplit(api).netloc]}]  # `api:8000` in compose
        job["scrape_interval"] = "1s"
        configured.pop("alerting")  # no Alertmanager here
        config_file.write_text(yaml.safe_dump(configured))
        command = [binary, f"--config.file={config_file}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                   "--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
        with running(command, "/-/ready", {}, cwd=folder) as prometheus:
            _until(prometheus, f'up{{job="{JOB}"}}', "0")  # refused: 401
            (folder / "api_token").write_text(token)
            _until(prometheus, f'up{{job="{JOB}"}}', "1")
            _until(prometheus, f'count({{job="{JOB}", __name__=~"streamflow_.+"}}) > bool 0', "1")
