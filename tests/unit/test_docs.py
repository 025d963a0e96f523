"""The docs say what the code does: docs/commands.md lists the same make targets as `make help`,
the same commands as `streamflow --help`, the same exit codes as `streamflow.cli.Exit`;
docs/reliability.md names the test behind every promise."""

from __future__ import annotations

import re

from streamflow import config
from streamflow.cli import Exit, all_commands

COMMANDS = (config.PROJECT_ROOT / "docs" / "commands.md").read_text()
MAKEFILE = (config.PROJECT_ROOT / "Makefile").read_text()


def test_the_docs_list_the_targets_make_help_lists():
    helped = set(re.findall(r"^([a-zA-Z_-]+):.*## ", MAKEFILE, flags=re.M)) - {"help"}
    paragraph = COMMANDS.split("`make help` lists every target:", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"`([a-z-]+)`", paragraph)) == helped


def test_the_docs_list_every_command():
    table = COMMANDS.split("## The command line", 1)[1].split("Every command", 1)[0]
    listed = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([a-z-]+)`", row.split(" | ")[0])
    }
    assert listed == {command.name for command in all_commands()}


def test_the_docs_list_every_exit_code():
    table = COMMANDS.split("ends with one of these exit codes:", 1)[1].split("\n\n", 2)[1]
    codes = [int(row.split("|")[1]) for row in table.splitlines() if re.match(r"\| \d", row)]
    assert codes == [code.value for code in Exit]


ROOT = config.PROJECT_ROOT
RELIABILITY = ROOT / "docs" / "reliability.md"
TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _promises(page: str) -> list[str]:
    """Every bullet (with its continuation lines) and every table body row under a heading."""
    promises: list[str] = []
    in_section = False
    for line in page.splitlines():
        if line.startswith("## "):
            in_section = True
        elif not in_section or not line.strip():
            continue
        elif line.startswith("- ") or (line.startswith("|") and not line.startswith("|---")):
            promises.append(line)
        elif line.startswith("  ") and promises and promises[-1].startswith("- "):
            promises[-1] += " " + line.strip()
    return [p for p in promises if not p.startswith("| fault |")]


def test_every_reliability_promise_names_its_test():
    page = RELIABILITY.read_text(encoding="utf-8")
    promises = _promises(page)
    assert len(promises) > 20
    unproven = [p[:90] for p in promises if not TEST_REFERENCE.search(p)]
    assert not unproven, f"promises that name no test: {unproven}"
    missing = [
        f"{path}::{name}"
        for path, name in TEST_REFERENCE.findall(page)
        if not (ROOT / path).is_file()
        or not re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(encoding="utf-8"), re.M)
    ]
    assert not missing, f"tests named in docs/reliability.md that do not exist: {missing}"


def test_the_licence_the_changelog_and_the_version_agree():
    import subprocess
    import sys
    import tomllib

    project = tomllib.loads((config.PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert (
        "Apache License\n                           Version 2.0"
        in (config.PROJECT_ROOT / "LICENSE").read_text()
    )
    printed = subprocess.run(
        [sys.executable, "-m", "streamflow", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert printed == f"streamflow {project['version']}\n"
    changelog = (config.PROJECT_ROOT / "CHANGELOG.md").read_text()
    assert f"## [{project['version']}]" in changelog and "## [Unreleased]" in changelog
