"""The API's command line (`python -m serving`, `streamflow serve`): --help prints help and starts
nothing; an option overrides its variable and is checked like it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from serving.__main__ import main
from streamflow import config


def test_help_prints_the_options_and_starts_no_server(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0 and "--port PORT" in out and "--workers WORKERS" in out


def test_an_option_is_checked_as_its_variable_is(monkeypatch, capsys):
    through = subprocess.run(
        [sys.executable, "-m", "streamflow", "serve", "--workers", "zero"],
        capture_output=True, text=True, timeout=60, cwd=config.PROJECT_ROOT,
    )  # fmt: skip
    assert through.returncode == 2 and "WORKERS" in through.stderr and "zero" in through.stderr, through
    for name in (config.HOST, config.PORT, config.WORKERS):
        monkeypatch.setenv(name, config.VARIABLES[name].default)  # put back after the test
    assert main(["--port", "not-a-port"]) == 2
    assert "PORT" in capsys.readouterr().err
