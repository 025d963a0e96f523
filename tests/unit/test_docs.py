"""The README says what the code does: the same make targets as `make help`, the same commands
as `streamflow --help`, the same exit codes as `streamflow.cli.Exit`."""

from __future__ import annotations

import re

from streamflow import config
from streamflow.cli import Exit
from streamflow.cli.commands import COMMANDS

README = (config.PROJECT_ROOT / "README.md").read_text()
MAKEFILE = (config.PROJECT_ROOT / "Makefile").read_text()


def test_the_readme_lists_the_targets_make_help_lists():
    helped = set(re.findall(r"^([a-zA-Z_-]+):.*## ", MAKEFILE, flags=re.M)) - {"help"}
    paragraph = README.split("`make help` lists every target:", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"`([a-z-]+)`", paragraph)) == helped


def test_the_readme_lists_every_command():
    table = README.split("## The command line", 1)[1].split("Every command", 1)[0]
    listed = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([a-z-]+)`", row.split(" | ")[0])
    }
    assert listed == {command.name for command in COMMANDS}


def test_the_readme_lists_every_exit_code():
    table = README.split("ends with one of these exit codes:", 1)[1].split("\n\n", 2)[1]
    codes = [int(row.split("|")[1]) for row in table.splitlines() if re.match(r"\| \d", row)]
    assert codes == [code.value for code in Exit]
