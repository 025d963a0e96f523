"""The commands of the monthly job as a Prefect flow: run it once, serve it on a schedule, and the
Prefect server it reports to (streamflow/orchestration/)."""

from __future__ import annotations

import importlib.util
import sys

from streamflow import config
from streamflow.cli.exits import Exit
from streamflow.cli.registry import arguments, command


def _prefect_missing() -> bool:
    """Checked without importing Prefect: it reads its settings (PREFECT_API_URL) when imported."""
    if importlib.util.find_spec("prefect") is None:
        print("Prefect is not installed: make setup-flow (or uv sync --group flow)", file=sys.stderr)
        return True
    return False


def _report_to_our_server() -> bool:
    """Without PREFECT_API_URL, the server `make orchestrator-up` started, when it runs (Prefect's
    temporary server would open the same SQLite file beside it); True when there is a server."""
    from streamflow.orchestration import server

    if config.is_set(config.PREFECT_API_URL):
        return True
    found = server.running()
    if found is None:
        return False
    config.export({"PREFECT_API_URL": found.api_url})
    print(f"reporting to the Prefect server at {found.ui} (make orchestrator-up)")
    return True


@command(
    "flow",
    "The monthly job once, as a Prefect flow (reports to PREFECT_API_URL, or orchestrator-up's server)",
    "streamflow flow",
    "PREFECT_API_URL=http://127.0.0.1:4200/api SEEDS_DIR=../shared/streamflow_seeds streamflow flow",
    stopped="flow stopped",
)
def flow(args) -> Exit:
    from streamflow import orchestration

    orchestration.use_prefect()
    if _prefect_missing():
        return Exit.USAGE
    from streamflow.orchestration import server

    # no server to report to: one for this run, booting while the pipeline's modules load
    temporary = None if _report_to_our_server() else server.temporary()
    from streamflow.orchestration.flow import monthly_job
    from streamflow.pipeline import JobStopped

    if temporary is not None:
        server.ready(temporary)
    try:
        summary = monthly_job()
    except JobStopped as stopped:
        print(f"flow stopped: {stopped}", file=sys.stderr)
        return Exit.FAILED
    print(f"flow done: {summary}")
    return Exit.DONE


@command(
    "orchestrator",
    "A Prefect server (API and UI) on 127.0.0.1:PREFECT_PORT: up, down, status, url",
    "streamflow orchestrator up",
    "export PREFECT_API_URL=$(streamflow orchestrator url)",
)
@arguments(lambda p: p.add_argument("action", choices=["up", "down", "status", "url"]))
def orchestrator(args) -> Exit:
    if _prefect_missing():
        return Exit.USAGE
    from streamflow.orchestration import server

    if args.action == "up":
        started = server.up()
        print(f"Prefect server on {started.ui} (its log {server.log_file()})")
        print(f"use it: export PREFECT_API_URL={started.api_url}")
        return Exit.DONE
    if args.action == "down":
        print("Prefect server stopped" if server.down() else "Prefect server was not running")
        return Exit.DONE
    found = server.running()
    if found is None:
        print("the Prefect server is not running: streamflow orchestrator up", file=sys.stderr)
        return Exit.UNREACHABLE
    print(
        found.api_url if args.action == "url" else f"Prefect server running on {found.ui} (pid {found.pid})"
    )
    return Exit.DONE


@command(
    "schedule",
    "Serve the monthly job on SCHEDULE_CRON and the served log's replay on REPLAY_CRON (UTC) until stopped",
    "streamflow schedule",
    "SCHEDULE_CRON='0 6 1 * *' SEEDS_DIR=/exports streamflow schedule",
)
def schedule(args) -> Exit:
    from streamflow import orchestration

    orchestration.use_prefect()
    if _prefect_missing():
        return Exit.USAGE
    if not _report_to_our_server():
        print(
            "schedule needs a Prefect server: make orchestrator-up (or set PREFECT_API_URL)", file=sys.stderr
        )
        return Exit.UNREACHABLE
    from streamflow import pipeline
    from streamflow.orchestration.flow import serve

    seeds = pipeline.seeds_dir().resolve()
    cron, replay_cron = config.get(config.SCHEDULE_CRON), config.get(config.REPLAY_CRON)
    print(
        f"serving the monthly job on '{cron}' (UTC) for {seeds}, the served log's replay on "
        f"'{replay_cron}', at {config.get(config.PREFECT_API_URL)}"
    )
    serve(seeds, cron, replay_cron)
    return Exit.DONE
