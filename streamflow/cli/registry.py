"""The registry of `streamflow`'s commands: each its name, summary, examples, arguments and the
function that runs it (commands.py: the monthly job's steps; servers.py: the servers and tools;
streamflow/cli/__init__.py imports both and lists them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from streamflow.cli.exits import Exit


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    examples: tuple[str, ...]
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Exit]
    stopped: str = ""  # how an error message starts (default: "<name> stopped")


COMMANDS: list[Command] = []


def command(name: str, summary: str, *examples: str, stopped: str = ""):
    def register(run):
        arguments = getattr(run, "arguments", lambda parser: None)
        COMMANDS.append(Command(name, summary, examples, arguments, run, stopped or f"{name} stopped"))
        return run

    return register


def arguments(add: Callable[[argparse.ArgumentParser], None]):
    def attach(run):
        run.arguments = add
        return run

    return attach
