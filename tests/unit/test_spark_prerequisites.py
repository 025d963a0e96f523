"""The Spark engine's prerequisites, checked before any JVM starts: a missing Java stops the
command with one line naming the Debian package (exit 2); Feast's steps, not on Spark yet,
refuse with one line (exit 4) before any work."""

from __future__ import annotations

import pytest

from streamflow import cli, config
from streamflow.engines.spark.session import JAVA_PACKAGE, SparkMissing, check_prerequisites


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
def test_feast_steps_refuse_on_spark_before_any_work(step, capsys):
    with config.overridden({config.OFFLINE_ENGINE: "spark"}):
        assert cli.main(step) == cli.Exit.REFUSED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "OFFLINE_ENGINE=spark" in err[0], err
