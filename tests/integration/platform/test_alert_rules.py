"""The alerting rules shipped in deploy/prometheus/, checked by Prometheus' own `promtool` (Debian's
`prometheus` package; `.ci/run` installs it): valid rules and scrape configs, every alert firing
in its test case (alerts_test.yml), and every metric they read one the API exports."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from serving import metrics
from streamflow import targets

RULES_DIR = targets.PROJECT_ROOT / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: apt-get install prometheus (.ci/run installs it)")
    return subprocess.run([binary, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120)


def test_the_rules_and_both_scrape_configs_are_valid():
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for config in ("prometheus.yml", "prometheus-compose.yml"):
        checked = promtool("check", "config", config)
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


def test_the_rules_read_only_metrics_the_api_exports():
    exported = {
        f"{metrics.REQUESTS_NAME}_total",
        metrics.LATENCY_NAME,
        *(
            gauge._name
            for gauge in (
                metrics.FRESHNESS,
                metrics.DRIFT,
                metrics.DRIFT_THRESHOLD,
                metrics.SKEW,
                metrics.READY,
            )
        ),
    }
    read = set(re.findall(r"\bstreamflow_[a-z_]+", (RULES_DIR / "alerts.yml").read_text()))
    assert read and read <= exported, read - exported
