"""The Spark engine's prerequisites, checked before any JVM starts: a missing Java stops the
command with one line naming the Debian package (exit 2), whatever the command."""

from __future__ import annotations

import pytest

from streamflow import cli
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
