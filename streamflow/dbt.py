"""dbt in-process with the project's database settings.

Fills the variables `dbt_project/profiles.yml` reads from the one settings source, points dbt at
the project's own profiles, and keeps dbt from calling home.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from streamflow import config, database, engines, logs, targets
from streamflow.control import build_log, job_lock, locks

DBT_DIR = targets.PROJECT_ROOT / "dbt_project"
QUIET_ENV = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DBT_VERSION_CHECK": "false",
    "DO_NOT_TRACK": "1",
}
FAILED_STATUSES = ("error", "fail", "runtime error")


def target_dir() -> Path:
    """Where dbt writes its artifacts: DBT_TARGET_PATH (dbt's own variable, relative to the
    project), else the project's target/."""
    return DBT_DIR / (config.get(config.DBT_TARGET_PATH) or "target")


def dbt_env() -> dict[str, str]:
    return {
        **QUIET_ENV,
        "DBT_LOG_FORMAT": "json" if logs.json_enabled() else "default",
        **engines.current().dbt_target(),
        # the marts' pre-hook fence (macros/pipeline_fence.sql): "" outside a run
        job_lock.EPOCH_VARIABLE: job_lock.epoch(),
        "DBT_PROFILES_DIR": str(DBT_DIR),
        "DBT_PROJECT_DIR": str(DBT_DIR),
    }


def invoke(args: list[str], env: dict[str, str] | None = None):
    """Run one dbt command in-process (with `env`, else `dbt_env()`); dbt's `dbtRunnerResult`."""
    config.export(env or dbt_env())
    from dbt.cli.main import dbtRunner

    return dbtRunner().invoke(args)


def failed_nodes(result) -> list[str]:
    """Names of the models and tests that failed or errored in a dbt result."""
    return [node.name for node in node_results(result) if node.failed]


def run(args: list[str]) -> bool:
    """Run one dbt command; True when every node succeeded. A build is logged (build_log.py)."""
    if args[:1] == ["build"]:
        return bool(build(args[1:], plan_build().read_upto).success)
    return bool(invoke(args).success)


def build(args: list[str], read_upto: datetime | None):
    """`dbt build` with `args`, in the build log from its start to its end; dbt's result."""
    env = dbt_env()  # the engine first: a missing prerequisite stops us before the log says "started"
    invocation = build_log.started(read_upto)
    result = None
    try:
        result = invoke(["build", *args], env)
    finally:
        failures = failed_nodes(result) if result is not None else ["interrupted"]
        if result is not None and not result.success and not failures:
            failures = [str(result.exception or "dbt stopped")[:500]]
        build_log.finished(invocation, bool(result is not None and result.success), failures)
    return result


@dataclass(frozen=True)
class BuildPlan:
    """What a build reads: the months loaded or restated since the last good build (None: every
    month, on a first build), and the newest load it covers, which the build log records."""

    months: list[date] | None
    read_upto: datetime | None

    def dbt_vars(self) -> list[str]:
        """The build months for dbt (build_window.sql); none on a first build (every month)."""
        if self.months is None:
            return []
        return ["--vars", json.dumps({"build_months": [m.isoformat() for m in self.months]})]


def plan_build() -> BuildPlan:
    """The next incremental build, read while no ingest is half-way (the ingest lock, shared):
    a month committed after this read has a later `loaded_at` than `read_upto`, so the build log
    never counts it as built and the next build takes it (what `build_months()` in
    dbt_project/macros/build_window.sql reads too when dbt runs alone)."""
    with database.connect() as conn:
        if conn.execute("select to_regclass('raw.ingest_log')").fetchone()[0] is None:
            return BuildPlan(None, None)
        locks.hold_ingest(conn, shared=True)
        [(read_upto,)] = conn.execute("select max(loaded_at) from raw.ingest_log").fetchall()
        if conn.execute("select to_regclass('features.dbt_build_log')").fetchone()[0] is None:
            return BuildPlan(None, read_upto)
        built_on = build_log.last_good_read(conn)
        if built_on is None:
            return BuildPlan(None, read_upto)
        rows = conn.execute(
            "select distinct as_of from raw.ingest_log where loaded_at > %s order by 1", (built_on,)
        ).fetchall()
    return BuildPlan([as_of for (as_of,) in rows], read_upto)


@dataclass(frozen=True)
class NodeResult:
    """One model, test, seed or snapshot of a dbt run: what it is, how it ended, in how long."""

    unique_id: str
    name: str
    resource_type: str
    status: str
    seconds: float
    message: str

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


@dataclass(frozen=True)
class Built:
    """A `dbt build`'s outcome, true when every node passed; the months it built (None: all)."""

    success: bool
    months: list[date] | None
    nodes: list[NodeResult]

    def __bool__(self) -> bool:
        return self.success

    def failures(self) -> list[NodeResult]:
        return [node for node in self.nodes if node.failed]


def node_results(result) -> list[NodeResult]:
    """The nodes of a dbt result, in the order dbt ran them."""
    return [
        NodeResult(
            unique_id=r.node.unique_id,
            name=r.node.name,
            resource_type=str(r.node.resource_type),
            status=str(r.status),
            seconds=round(float(r.execution_time or 0.0), 3),
            message=" ".join(str(r.message or "").split())[:500],
        )
        for r in getattr(result.result, "results", None) or []
    ]


def build_incrementally() -> Built | None:
    """`dbt build` of what changed: the months loaded or restated since the last good build, their
    data tests scoped to them; everything on a first build. None when there is nothing to build."""
    plan = plan_build()
    if plan.months is not None and not plan.months:
        return None
    if plan.months:
        months = ", ".join(m.isoformat() for m in plan.months)
        print(f"dbt build of {len(plan.months)} month(s): {months}", flush=True)
        print("  incremental: the months loaded or restated since the last good build, their tests "
              "scoped to them (the whole check: streamflow dbt build)", flush=True)  # fmt: skip
    else:
        print("dbt build of every month: a first build (no good build recorded yet)", flush=True)
    result = build(plan.dbt_vars(), plan.read_upto)
    return Built(bool(result.success), plan.months, node_results(result))


@dataclass(frozen=True)
class Freshness:
    """One snapshot table's newest as_of against the reference day: pass, warn or error."""

    source: str
    status: str
    newest: date | None
    age_days: float | None

    def __str__(self) -> str:
        newest = self.newest.isoformat() if self.newest else "no rows"
        age = f", {self.age_days:.0f} days old" if self.age_days is not None else ""
        return f"{self.source}: newest as_of {newest}{age} ({self.status})"


def freshness(reference: date | None = None) -> list[Freshness]:
    """`dbt source freshness` on the snapshots' as_of, against `reference` (default: today)."""
    args = ["source", "freshness", "--quiet"]
    if reference is not None:
        args += ["--vars", json.dumps({"freshness_reference": reference.isoformat()})]
    result = invoke(args)
    checked = []
    for item in getattr(result.result, "results", None) or []:
        if str(item.node.resource_type) != "source":  # the project's hooks report here too
            continue
        newest = getattr(item, "max_loaded_at", None)
        age = getattr(item, "age", None)
        checked.append(
            Freshness(
                source=item.node.name,
                status=str(item.status),
                newest=newest.date() if newest else None,
                age_days=age / 86400 if age is not None else None,
            )
        )
    return checked


DOCS_DIR = targets.DATA_DIR / "reports" / "dbt-docs"
DOCS_FILES = {
    "static_index.html": "index.html",
    "manifest.json": "manifest.json",
    "catalog.json": "catalog.json",
}


def generate_docs(dest: Path = DOCS_DIR) -> Path:
    """dbt's docs site (lineage from the sources through the marts to the exposures), as one
    static page with the manifest and catalog inside, opened from disk; its index.html."""
    result = invoke(["docs", "generate", "--static"])
    if not result.success:
        raise RuntimeError(f"dbt docs generate failed: {result.exception or failed_nodes(result)}")
    dest.mkdir(parents=True, exist_ok=True)
    for source, name in DOCS_FILES.items():
        shutil.copyfile(target_dir() / source, dest / name)
    index = dest / "index.html"
    index.write_text(_without_broken_fetches(index.read_text(encoding="utf-8")), encoding="utf-8")
    return index


# dbt-docs ships two URLs the browser fetches before they mean anything: SVG icons bound with a plain
# `xlink:href="{{ ... }}"` (fetched literally before Angular interpolates them; `ng-attr-` is
# Angular's way to set them only once interpolated) and a favicon left as an unbuilt webpack
# placeholder. Each costs a 404 (or, opened from disk, a security error) in the console per menu item.
DOCS_FIXES = (
    ('<use xlink:href="{{ getIcon(', '<use ng-attr-xlink:href="{{ getIcon('),
    ("href=\"${require('./assets/favicons/favicon.ico')}\"", 'href="data:,"'),
)


def _without_broken_fetches(page: str) -> str:
    for broken, fixed in DOCS_FIXES:
        page = page.replace(broken, fixed)
    return page
