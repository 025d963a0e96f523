"""`streamflow <command>`: the platform's one command line (`streamflow --help`, and
`streamflow <command> --help` with examples). The Makefile calls it; so do the tests.

Every command exits with the codes of `Exit`, mapped here once from what the library raises.
"""

from __future__ import annotations

import argparse
import os
import sys

from streamflow import config
from streamflow.cli.exits import Exit
from streamflow.plugins import PrerequisiteMissing

__all__ = ["Exit", "main", "parser"]


def _refusals() -> dict[type[BaseException], Exit]:
    """What the library raises, and the exit code it means (imported late: `--help` stays fast)."""
    from streamflow import faults
    from streamflow.engines import StepRefused
    from streamflow.ingest import IngestError
    from streamflow.orchestration.server import PortInUse
    from streamflow.quality.monitor import MonitorError
    from streamflow.quality.report import ReportError

    return {
        config.ConfigError: Exit.USAGE,
        PrerequisiteMissing: Exit.USAGE,
        PortInUse: Exit.USAGE,
        **dict.fromkeys(faults.unreachable_errors(), Exit.UNREACHABLE),
        StepRefused: Exit.REFUSED,
        IngestError: Exit.REFUSED,
        MonitorError: Exit.REFUSED,
        ReportError: Exit.REFUSED,
    }


def all_commands() -> list:
    """Every command, in the order `streamflow --help` lists them (imported late: `--help` of one
    command does not pay for the others' imports either)."""
    from streamflow.cli import commands, flows, servers  # noqa: F401 - importing them registers them
    from streamflow.cli.registry import COMMANDS

    return COMMANDS


def installed_version() -> str:
    """The installed distribution's version (pyproject.toml's, as CHANGELOG.md names it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("streamflow-features")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:

    top = argparse.ArgumentParser(
        prog="streamflow",
        description="StreamFlow's churn feature platform: exports -> dbt -> Feast -> the features API.",
        epilog="exit codes: " + ", ".join(f"{code.value} {code.name.lower()}" for code in Exit),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    sub = top.add_subparsers(dest="command", required=True, metavar="<command>")
    for command in all_commands():
        one = sub.add_parser(
            command.name,
            help=command.summary,
            description=command.summary,
            epilog="examples:\n" + "\n".join(f"  {e}" for e in command.examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.arguments(one)
        one.set_defaults(run=command.run, stopped=command.stopped)
    return top


# What the platform writes holds users' data and servers' state (the lake, the exports it makes,
# training sets, Redis' and Prefect's files, the servers started from here inherit it): the
# user's alone, whatever the shell's umask (0022 leaves every file world-readable).
PRIVATE_UMASK = 0o077


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # bad usage: argparse prints it and exits 2
    umask = os.umask(PRIVATE_UMASK)
    try:
        config.check()
        return int(args.run(args))
    except Exception as exc:
        for kind, code in _refusals().items():
            if isinstance(exc, kind):
                print(f"{args.stopped}: {exc}", file=sys.stderr)
                return int(code)
        raise
    finally:
        os.umask(umask)  # called in-process (the tests), the caller's again
