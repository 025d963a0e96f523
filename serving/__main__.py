"""`python -m serving`: serve the features API on HOST:PORT with WORKERS uvicorn workers
(`--host`, `--port`, `--workers` override the variables; `--help` says so).

Exits with the codes of `streamflow` (streamflow/cli): 2 a bad variable, 3 the store unreachable,
4 a stack never built; one line says which.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys

import uvicorn

from serving.protocol import DeadlineHttpToolsProtocol
from serving.settings import ServingSettings
from streamflow import config, logs, online, targets
from streamflow.cli import PRIVATE_UMASK
from streamflow.cli.exits import Exit
from streamflow.cli.servers import SERVE_OPTIONS, given_serve_options
from streamflow.features.store import project_name
from streamflow.online.contract import StoreProblem

EXAMPLE_USER = "7590-VHVEG"  # the course's example user, in the real exports


def inspect_stack() -> tuple[StoreProblem | None, str]:
    """(what keeps the API from serving, or None; a user id to show in the example commands),
    read as the API's read-only role: its workers inherit this environment, where the Feast
    configuration's variables would otherwise carry the owner's password."""
    store, repo = online.open_backend(targets.reader_target(), project_name(), reader=True)
    problem = store.served_problem(repo)
    return problem, (None if problem else store.example_user(repo, EXAMPLE_USER)) or EXAMPLE_USER


def options() -> argparse.ArgumentParser:
    """The command line: each option overrides its variable (the variables stay the defaults)."""
    parser = argparse.ArgumentParser(
        prog="python -m serving",
        description="Serve StreamFlow's features API (Litestar on uvicorn). Every other setting is a "
        "variable: docs/configuration.md.",
        epilog="exit codes: " + ", ".join(f"{code.value} {code.name.lower()}" for code in Exit),
    )
    for option, name in SERVE_OPTIONS.items():
        meaning = config.VARIABLES[name].meaning
        parser.add_argument(option, metavar=name, help=f"{meaning} (default: ${name}, else its default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)  # its metrics' files (several workers) are the user's alone
    config.export(given_serve_options(options().parse_args(argv)))  # checked below, as the variables
    try:
        config.check()
    except config.ConfigError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return Exit.USAGE
    api = ServingSettings()
    problem, user = inspect_stack()
    if problem:
        print(f"serve: {problem.message}", file=sys.stderr)
        return Exit.UNREACHABLE if problem.unreachable else Exit.REFUSED
    if api.workers > 1:  # workers count into files of one fresh folder; /metrics adds them up
        folder = targets.STATE_DIR / "prometheus" / f"server-{api.port}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        config.export({config.PROMETHEUS_DIR: str(folder), config.METRICS_MULTIPROCESS: "1"})
    base = f"http://{api.host}:{api.port}"
    logs.say(
        f"serving StreamFlow features on {base} ({api.workers} worker(s)); try:\n"
        f"  curl {base}/features/{user}\n"
        f"  curl -X POST {base}/features -H 'content-type: application/json' "
        f'-d \'{{"user_ids": ["{user}", "0000-NOBODY"]}}\'\n'
        f"  curl {base}/ready    # docs: {base}/schema/swagger",
        logger_name="serving",
    )
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=api.host,
        port=api.port,
        workers=api.workers,
        log_level="warning",
        log_config=logs.uvicorn_log_config() or uvicorn.config.LOGGING_CONFIG,
        access_log=False,
        loop="uvloop",
        http=functools.partial(DeadlineHttpToolsProtocol, request_timeout=api.client_timeout_s),
        limit_concurrency=api.max_connections,  # past it uvicorn answers 503 at once
        timeout_keep_alive=min(5, api.client_timeout_s),
    )
    return Exit.DONE


if __name__ == "__main__":
    sys.exit(main())
