"""dbt in-process with the project's database settings.

Fills the variables `dbt_project/profiles.yml` reads from the one settings source, points dbt at
the project's own profiles, and keeps dbt from calling home.
"""

from __future__ import annotations

import os

from streamflow import settings

DBT_DIR = settings.PROJECT_ROOT / "dbt_project"
QUIET_ENV = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DBT_VERSION_CHECK": "false",
    "DO_NOT_TRACK": "1",
}


def dbt_env() -> dict[str, str]:
    return {
        **QUIET_ENV,
        **settings.admin_target().as_env(),
        "DBT_PROFILES_DIR": str(DBT_DIR),
        "DBT_PROJECT_DIR": str(DBT_DIR),
    }


def invoke(args: list[str]):
    """Run one dbt command in-process; returns dbt's `dbtRunnerResult`."""
    os.environ.update(dbt_env())
    from dbt.cli.main import dbtRunner

    return dbtRunner().invoke(args)


def failed_nodes(result) -> list[str]:
    """Names of the models and tests that failed or errored in a dbt result."""
    nodes = getattr(result.result, "results", None) or []
    return [r.node.name for r in nodes if str(r.status) in ("error", "fail", "runtime error")]


def run(args: list[str]) -> bool:
    """Run one dbt command; True when every node succeeded."""
    return bool(invoke(args).success)
