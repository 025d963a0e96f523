"""The one connection truth: DATABASE_URL / PG* read the libpq way, and the same parameters reach
every consumer (psycopg, dbt's profile, Feast's registry URL and store configs), no secret shown."""

from __future__ import annotations

import json
import os
import pathlib
from urllib.parse import quote

import pytest
import yaml

from streamflow import config, dbt, engines, online, targets
from streamflow.features.store import FEAST_PREFIX, REPO_DIR, feast_env, repo_config

PASSWORD = "p@ss:w#rd"
TLS_URL = (
    f"postgresql://app:{quote(PASSWORD, safe='')}@db.example.com:6543/features"
    "?sslmode=verify-full&sslrootcert=/etc/ca.pem&sslcert=/etc/client.crt&sslkey=/etc/client.key"
    "&application_name=etl&connect_timeout=7&options=-c%20search_path%3Dfeatures"
)


@pytest.fixture
def clean_env(monkeypatch):
    """No PG* variable or DATABASE_URL of the machine leaks into a case."""
    import os

    for name in list(os.environ):
        if name.startswith("PG") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    return monkeypatch


def test_every_url_parameter_is_kept(clean_env):
    target = targets.parse(TLS_URL)
    assert (target.host, target.port, target.database, target.user) == (
        "db.example.com",
        6543,
        "features",
        "app",
    )
    assert target.password == PASSWORD
    assert target.sslmode == "verify-full"
    assert dict(target.params) == {
        "sslrootcert": "/etc/ca.pem",
        "sslcert": "/etc/client.crt",
        "sslkey": "/etc/client.key",
        "application_name": "etl",
        "connect_timeout": "7",
        "options": "-c search_path=features",
    }
    assert targets.parse(target.url) == target  # the URL we hand on says the same
    assert targets.parse(target.conninfo) == target


def test_pg_variables_fill_what_the_url_leaves_out(clean_env):
    clean_env.setenv("PGPASSWORD", "from-env")
    clean_env.setenv("PGSSLROOTCERT", "/etc/env-ca.pem")
    clean_env.setenv("PGPORT", "7777")
    target = targets.parse("postgresql://app@db.example.com/features?sslmode=verify-ca")
    assert target.password == "from-env"
    assert target.port == 7777
    assert target.tls_file("sslrootcert") == "/etc/env-ca.pem"
    in_url = "in-url"
    assert targets.parse(f"postgresql://app:{in_url}@db/features").password == in_url  # the URL wins


def test_pghost_alone_is_a_target(clean_env):
    clean_env.setenv("PGHOST", "db.internal")
    clean_env.setenv("PGUSER", "etl")
    clean_env.setenv("PGDATABASE", "warehouse")
    assert not targets.uses_embedded()
    target = targets.admin_target()
    assert (target.host, target.user, target.database, target.password) == (
        "db.internal",
        "etl",
        "warehouse",
        "",
    )
    assert target.sslmode == "prefer"  # libpq's default


def test_no_password_means_none_is_sent(clean_env):
    """Trust, peer or certificate auth, or libpq's own .pgpass lookup: no password keyword at all."""
    target = targets.parse("postgresql://postgres@localhost:5432/db")
    assert target.password == ""
    assert "password" not in target.keywords()
    assert "password" not in target.conninfo
    assert target.url == "postgresql://postgres@localhost:5432/db?sslmode=prefer"


def test_secrets_are_never_shown(clean_env):
    target = targets.parse(TLS_URL)
    for shown in (repr(target), target.safe_url, str(target)):
        assert "p@ss" not in shown and "p%40ss" not in shown, shown
    assert "***" in target.safe_url


def test_dbt_gets_the_same_parameters(clean_env):
    clean_env.setenv("DATABASE_URL", TLS_URL)
    env = dbt.dbt_env()
    assert env["STREAMFLOW_PG_PASSWORD"] == PASSWORD
    assert env["STREAMFLOW_PG_SSLMODE"] == "verify-full"
    assert env["STREAMFLOW_PG_SSLROOTCERT"] == "/etc/ca.pem"
    assert env["STREAMFLOW_PG_SSLCERT"] == "/etc/client.crt"
    assert env["STREAMFLOW_PG_SSLKEY"] == "/etc/client.key"
    profile = (dbt.DBT_DIR / "profiles.yml").read_text()
    for name in ("sslmode", "sslrootcert", "sslcert", "sslkey", "password"):
        assert f"{name}: " in profile and f"STREAMFLOW_PG_{name.upper()}" in profile


@pytest.mark.parametrize("password", ["", 'we"ird: #pass\\word', "p@ss:w#rd"])
def test_feast_reads_the_same_parameters_whatever_the_password(clean_env, password):
    """Feast pastes the variables into the YAML text: an empty or odd password must still parse
    (an empty one used to become null and fail feast apply)."""
    target = targets.parse(TLS_URL).with_role("app", password)
    config = repo_config(target)
    for store in (config.online_store, config.offline_store):
        assert store.password == password
        assert (store.host, store.port, store.user, store.sslmode) == (
            "db.example.com",
            6543,
            "app",
            "verify-full",
        )
        assert store.sslrootcert_path == "/etc/ca.pem"
        assert (store.sslcert_path, store.sslkey_path) == ("/etc/client.crt", "/etc/client.key")
    registry = config.registry.path
    assert registry.startswith("postgresql+psycopg://app")
    assert "sslmode=verify-full" in registry and "sslrootcert=%2Fetc%2Fca.pem" in registry
    assert targets.parse(registry.replace("postgresql+psycopg", "postgresql", 1)) == target


def test_feast_variables_are_json_strings(clean_env):
    values = feast_env(targets.parse(TLS_URL))
    assert json.loads(values[f"{FEAST_PREFIX}ONLINE_STORE"])["password"] == PASSWORD
    yaml_text = (REPO_DIR / "feature_store.yaml").read_text()
    used = {name for name in values if f"${{{name}}}" in yaml_text}
    assert used == {name for name in values if name.startswith(FEAST_PREFIX)}
    assert "os.environ" not in (REPO_DIR / "data_sources.py").read_text()  # the engine builds its sources
    assert yaml.safe_load(yaml_text)["project"] == "streamflow"


@pytest.mark.parametrize("engine", ["postgres", "spark"])
def test_the_offline_store_section_is_the_engines(engine, clean_env, monkeypatch):
    """feature_store.yaml as Feast reads it (variables pasted into the text, then parsed): the
    engine's offline store, a password with YAML's special characters intact."""
    with config.overridden({config.OFFLINE_ENGINE: engine}):
        values = feast_env(targets.parse(TLS_URL))
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    yaml_text = (REPO_DIR / "feature_store.yaml").read_text()
    offline = yaml.safe_load(os.path.expandvars(yaml_text))["offline_store"]
    assert offline["type"].endswith({"postgres": "postgres", "spark": "SparkOfflineStore"}[engine])
    if engine == "postgres":
        assert offline["password"] == PASSWORD and offline["db_schema"] == "features"
    else:
        assert offline["spark_conf"]["spark.sql.session.timeZone"] == "UTC"


def test_the_generated_repo_gets_the_engines_kind_of_source(clean_env):
    """PostgreSQL's here; Spark's SparkSource needs pyspark, which the unit tier goes without
    (the Spark module's `feast apply` and training sets run on them)."""
    mart = {"name": "m_source", "table": "features.m", "timestamp_field": "feature_timestamp"}
    with config.overridden({config.OFFLINE_ENGINE: "postgres"}):
        source = engines.feast_sources({"m": mart})["m"]
    assert type(source).__name__ == "PostgreSQLSource" and source.name == "m_source"
    assert source.get_table_query_string().replace("`", "") == "features.m"


def test_two_processes_creating_the_same_secret_agree(tmp_path, monkeypatch):
    """The second of two racing processes saw no file, then found one: it reads the first's."""
    monkeypatch.setattr(targets, "STATE_DIR", tmp_path)
    first = targets._secret("race")
    monkeypatch.setattr(pathlib.Path, "exists", lambda self: False)  # as if it had looked too early
    assert targets._secret("race") == first
    assert (tmp_path / "secrets" / "race").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (tmp_path / "secrets").iterdir()) == ["race"]  # no draft left


def test_spark_jvm_options_reach_the_driver_and_executors(monkeypatch):
    from streamflow.engines.spark.session import spark_conf

    monkeypatch.setenv("SPARK_JVM_OPTIONS", " -XX:TieredStopAtLevel=1 ")
    conf = spark_conf()
    for side in ("driver", "executor"):
        assert conf[f"spark.{side}.extraJavaOptions"] == "-Duser.timezone=UTC -XX:TieredStopAtLevel=1"
    monkeypatch.setenv("SPARK_JVM_OPTIONS", "")
    assert spark_conf()["spark.driver.extraJavaOptions"] == "-Duser.timezone=UTC"


def test_the_apis_feast_configuration_names_the_local_redis_as_its_reader(clean_env):
    """On the local Redis (no REDIS_URL), the online store's Feast section as the API opens it
    holds the read-only user's password and not the writer's; the commands', the writer's."""
    for name in (config.REDIS_URL, config.REDIS_READER_URL, config.REDIS_CLUSTER):
        clean_env.delenv(name, raising=False)
    passwords = targets.local_redis_passwords()
    with config.overridden({config.ONLINE_STORE: "redis"}):
        api_section = online.feast_online_store(targets.parse(TLS_URL), reader=True)
        commands_section = json.loads(feast_env(targets.parse(TLS_URL))[f"{FEAST_PREFIX}ONLINE_STORE"])
    assert not {"host", "password", "db_schema"} & set(api_section)  # Redis' section: no PostgreSQL in it
    api_redis, commands_redis = api_section["redis_url"], commands_section["redis_url"]
    assert api_redis.startswith(f"redis://streamflow_reader:{passwords['streamflow_reader']}@127.0.0.1:")
    assert passwords["streamflow"] not in json.dumps(api_section)
    assert commands_redis.startswith(f"redis://streamflow:{passwords['streamflow']}@127.0.0.1:")
