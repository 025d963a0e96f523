"""The Spark engine's prerequisites, checked before any JVM starts: a missing Java stops the
command with one line naming the Debian package (exit 2), Feast's steps on Spark included,
before any work."""

from __future__ import annotations

import pytest

from streamflow import cli, config
from streamflow.engines.spark.session import (
    JAVA_PACKAGE,
    SparkMissing,
    SparkUnreachable,
    check_endpoint,
    check_prerequisites,
)
from streamflow.processes import free_port


def test_no_java_is_one_line_naming_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without java
    with pytest.raises(SparkMissing, match=f"apt-get install {JAVA_PACKAGE}"):
        check_prerequisites()


def test_the_cluster_command_stops_with_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("STREAMFLOW_STATE_DIR", str(tmp_path / "state"))
    assert cli.main(["spark", "up"]) == cli.Exit.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and JAVA_PACKAGE in err[0], err


@pytest.mark.parametrize("step", [["apply"], ["materialize"], ["training-set"], ["monitor"], ["check-skew"]])
def test_feast_steps_on_spark_without_java_stop_before_any_work(step, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")  # never reached
    with config.overridden({config.OFFLINE_ENGINE: "spark"}):
        assert cli.main(step) == cli.Exit.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and JAVA_PACKAGE in err[0], err


@pytest.mark.parametrize("variable", ["SPARK_MASTER", "SPARK_REMOTE"])
def test_a_server_that_does_not_answer_is_one_line_naming_the_variable(variable, capsys):
    scheme = "spark" if variable == "SPARK_MASTER" else "sc"
    url = f"{scheme}://127.0.0.1:{free_port()}"  # nothing listens there
    with config.overridden({config.OFFLINE_ENGINE: "spark", getattr(config, variable): url}):
        assert cli.main(["materialize"]) == cli.Exit.UNREACHABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{variable}={url} does not answer" in err[0], err


def test_a_url_that_is_not_spark_s_is_named(capsys):
    with pytest.raises(SparkUnreachable, match="SPARK_REMOTE=http://x is not a Spark URL"):
        check_endpoint("SPARK_REMOTE", "http://x")
