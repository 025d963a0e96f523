"""The commands that start, stop and show the platform's servers and tools: the embedded
PostgreSQL, the local Redis and Spark cluster, the variables for dbt's and Feast's own CLIs, the API."""

from __future__ import annotations

import os
import shlex
import sys

from streamflow import config
from streamflow.cli.exits import Exit
from streamflow.cli.registry import arguments, command


@command(
    "db",
    "The embedded PostgreSQL: up, down, status, url (up with DATABASE_URL prepares that database)",
    "streamflow db up",
    "streamflow db status",
)
@arguments(lambda p: p.add_argument("action", choices=["up", "down", "status", "url"]))
def db(args) -> Exit:
    from streamflow import embedded_pg, targets

    if args.action == "up":
        print(embedded_pg.up())
        return Exit.DONE
    if not targets.uses_embedded():
        print(embedded_pg.not_in_use())
        return Exit.DONE
    if args.action == "url":
        print(targets.admin_target().url)
        return Exit.DONE
    server = embedded_pg.default_server()
    if args.action == "down":
        print("embedded PostgreSQL stopped" if server.stop() else "embedded PostgreSQL was not running")
        return Exit.DONE
    running = server.is_running()
    state = "running" if running else "stopped"
    print(f"embedded PostgreSQL {state} (data {server.data_dir}, port {server.port})")
    return Exit.DONE if running else Exit.UNREACHABLE


@command(
    "redis",
    "The project's own Redis: a 3-master cluster on 127.0.0.1:17001-17003 (REDIS_CLUSTER=0: one node)",
    "streamflow redis up",
    "REDIS_CLUSTER=0 streamflow redis up",
)
@arguments(lambda p: p.add_argument("action", choices=["up", "down", "status"]))
def redis(args) -> Exit:
    from streamflow.online import redis_server

    server = redis_server.default_server(config.get(config.REDIS_CLUSTER) is not False)
    if args.action == "up":
        print(server.up())
    elif args.action == "down":
        print("redis stopped" if server.down() else "redis was not running")
    else:
        running = [p for p in server.ports if server.pid(p)]
        print(f"redis nodes running: {running or 'none'} (data {server.root})")
        return Exit.DONE if len(running) == len(server.ports) else Exit.UNREACHABLE
    return Exit.DONE


@command(
    "spark",
    "A Spark standalone cluster on 127.0.0.1 (a master, two 1-core workers) for OFFLINE_ENGINE=spark",
    "streamflow spark up",
    "SPARK_MASTER=$(streamflow spark url) OFFLINE_ENGINE=spark streamflow dbt",
)
@arguments(lambda p: p.add_argument("action", choices=["up", "down", "status", "url"]))
def spark(args) -> Exit:
    from streamflow.engines.spark import cluster

    if args.action == "up":
        started = cluster.up()
        print(f"Spark master {started.master_url} (web UI {started.web_ui}), {cluster.WORKERS} workers")
        hint = f"SPARK_MASTER={started.master_url} OFFLINE_ENGINE=spark streamflow pipeline --no-feast"
        print(f"use it: {hint}")
    elif args.action == "down":
        print("spark stopped" if cluster.down() else "spark was not running")
    else:
        found = cluster.running()
        if found is None:
            print("spark is not running: streamflow spark up", file=sys.stderr)
            return Exit.UNREACHABLE
        print(found.master_url if args.action == "url" else f"{found.master_url} ({found.web_ui})")
    return Exit.DONE


@command(
    "env",
    "The variables dbt and the feast CLI need, as shell exports",
    'eval "$(streamflow env)" && cd feature_repo && feast plan',
)
def env(args) -> Exit:
    from streamflow.dbt import dbt_env
    from streamflow.features.store import feast_env

    for name, value in {**dbt_env(), **feast_env()}.items():
        print(f"export {name}={shlex.quote(value)}")
    return Exit.DONE


# The API's options, each overriding its variable: `streamflow serve` and `python -m serving` both
SERVE_OPTIONS = {"--host": config.HOST, "--port": config.PORT, "--workers": config.WORKERS}


def given_serve_options(args) -> dict[str, str]:
    """The variables the options given set (the rest keep their variables' values)."""
    chosen = {name: getattr(args, option.removeprefix("--")) for option, name in SERVE_OPTIONS.items()}
    return {name: value for name, value in chosen.items() if value is not None}


@command(
    "serve",
    "The features API on HOST:PORT with WORKERS workers (python -m serving)",
    "streamflow serve",
    "streamflow serve --host 0.0.0.0 --port 8080 --workers 2",
)
@arguments(lambda p: [p.add_argument(o, metavar=n, help=f"overrides ${n}") for o, n in SERVE_OPTIONS.items()])
def serve(args) -> Exit:
    # The API is its own program (serving/, above the library): run it, do not import it.
    options = {name: option for option, name in SERVE_OPTIONS.items()}
    passed = [part for name, value in given_serve_options(args).items() for part in (options[name], value)]
    os.execv(sys.executable, [sys.executable, "-m", "serving", *passed])  # noqa: S606 - our own interpreter
    return Exit.FAILED


@command(
    "status",
    "The platform on one screen: database, months loaded/built/materialized, the job, drift, skew, servers",
    "streamflow status",
    "streamflow status --json",
)
@arguments(lambda p: p.add_argument("--json", action="store_true", help="the same, as one JSON object"))
def status(args) -> Exit:
    import json

    from streamflow import status as platform

    found = platform.collect()
    print(json.dumps(found.as_dict(), indent=2, default=str) if args.json else platform.render(found))
    return {platform.HEALTHY: Exit.DONE, platform.ATTENTION: Exit.FAILED}.get(found.verdict, Exit.UNREACHABLE)
