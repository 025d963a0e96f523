"""The commands of the monthly job and its tools: each its arguments, its examples and the
library call it makes. The work itself is in the library; a command parses, calls, prints the
outcome, returns an Exit."""

from __future__ import annotations

import argparse
import functools
import sys
from datetime import date
from pathlib import Path

from streamflow import config
from streamflow.cli.exits import Exit
from streamflow.cli.registry import arguments, command
from streamflow.exports import FIRST_AS_OF


def reads_feast(run):
    """A command that reads Feast's registry and evaluates no feature repository: Feast imported
    without its definitions' runtime checks (1.8 s a process; streamflow/features/feast_import.py)."""

    @functools.wraps(run)
    def reading(args) -> Exit:
        from streamflow.features.feast_import import import_for_reading

        import_for_reading()
        return run(args)

    return reading


# -- the monthly job -----------------------------------------------------------------------------
def _pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-feast", action="store_true", help="stop after dbt build")
    parser.add_argument(
        "--checks", action="store_true", help="then check-skew and the report, as the flow does"
    )


@command(
    "pipeline",
    "Database up, ingest every month, dbt build, feast apply, materialize, monitor, training set",
    "streamflow pipeline",
    "SEEDS_DIR=../shared/streamflow_seeds streamflow pipeline --no-feast",
    "streamflow pipeline --checks",
    stopped="pipeline stopped, nothing was written",
)
@arguments(_pipeline_arguments)
def pipeline(args) -> Exit:
    from streamflow import pipeline

    return Exit(pipeline.run(with_feast=not args.no_feast, checks=args.checks))


def _ingest_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--month-dir", type=Path, help="one month folder of CSV exports")
    group.add_argument("--seeds-dir", type=Path, help="a folder of month_NNN folders")
    parser.add_argument("--as-of", type=date.fromisoformat, help="as_of of --month-dir (YYYY-MM-DD)")
    parser.add_argument("--force", action="store_true", help="reload months whose files were loaded already")


@command(
    "ingest",
    "Validate and load monthly CSV exports (a bad month changes nothing)",
    "streamflow ingest --seeds-dir ../shared/streamflow_seeds",
    "streamflow ingest --month-dir exports/2024-03 --as-of 2024-03-31",
    stopped="ingest aborted, nothing was written",
)
@arguments(_ingest_arguments)
def ingest(args) -> Exit:
    from streamflow import engines
    from streamflow import ingest as months

    engine = engines.current()
    if args.month_dir:
        as_of = args.as_of or months.implied_as_of(args.month_dir)
        if as_of is None:
            print("ingest: --as-of is required unless the folder is named month_NNN", file=sys.stderr)
            return Exit.USAGE
        engine.load_month(args.month_dir, as_of, force=args.force)
    else:
        for month_dir, as_of in months.month_dirs(args.seeds_dir):
            engine.load_month(month_dir, as_of, force=args.force)
    return Exit.DONE


@command(
    "dbt",
    "dbt with the project's settings: alone, the incremental build (the months loaded since the last good "
    "build); with arguments, that dbt command as given (`dbt build`: every month, every test)",
    "streamflow dbt",
    "streamflow dbt build --select marts",
    "streamflow dbt test",
)
@arguments(lambda p: p.add_argument("dbt_args", nargs=argparse.REMAINDER, help="a dbt command, as given"))
def dbt_command(args) -> Exit:
    from streamflow import dbt

    if args.dbt_args:
        return Exit.DONE if dbt.run(args.dbt_args) else Exit.FAILED
    built = dbt.build_incrementally()
    if built is None:
        print(
            "incremental build: no month loaded or restated since the last good build, the marts are "
            "current (every month, every test: streamflow dbt build)"
        )
    return Exit.FAILED if built is not None and not built else Exit.DONE


@command(
    "apply",
    "feast apply (skipped when nothing changed since the last), then the API role's read-only grants",
    "streamflow apply",
    "streamflow apply --force",
)
@arguments(lambda p: p.add_argument("--force", action="store_true", help="apply even when nothing changed"))
def apply(args) -> Exit:
    from streamflow.features.apply import apply

    apply(force=args.force)
    return Exit.DONE


@command(
    "materialize",
    "Load the months the online store lacks (new or restated), oldest first",
    "streamflow materialize",
    "streamflow materialize --full",
    stopped="materialize refused",
)
@arguments(lambda p: p.add_argument("--full", action="store_true", help="every month, not only new ones"))
@reads_feast
def materialize(args) -> Exit:
    from streamflow.features.materialize import materialize

    materialize(full=args.full)
    return Exit.DONE


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    from streamflow.features import DEFAULT_SERVICE

    parser.add_argument("--as-of", nargs="+", default=[FIRST_AS_OF.isoformat()], metavar="DATE|FROM..TO|all")
    parser.add_argument("--entities", type=Path, help="CSV of user_id,event_timestamp (instead of --as-of)")
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--feature-service", default=DEFAULT_SERVICE)


def as_ofs(values: list[str]) -> list[date] | None:
    """Dates, FROM..TO ranges of the labelled months, or `all` (None: every labelled month)."""
    from streamflow.features.training import labelled_months

    if values == ["all"]:
        return None
    chosen: set[date] = set()
    for value in values:
        if ".." in value:
            start, end = (date.fromisoformat(part) for part in value.split("..", 1))
            chosen.update(m for m in labelled_months() if start <= m <= end)
        else:
            chosen.add(date.fromisoformat(value))
    return sorted(chosen)


@command(
    "training-set",
    "A point-in-time-correct training set -> data/processed/training_df.csv (or --out)",
    "streamflow training-set",
    "streamflow training-set --as-of 2024-01-31..2024-12-31 --format parquet",
    "streamflow training-set --as-of all",
    "streamflow training-set --entities my_entities.csv",
    stopped="training set stopped",
)
@arguments(_training_arguments)
@reads_feast
def training_set(args) -> Exit:
    from streamflow.features.training import DEFAULT_OUT, build

    out = args.out or (DEFAULT_OUT.with_suffix(".parquet") if args.format == "parquet" else DEFAULT_OUT)
    try:
        months = as_ofs(args.as_of)
    except ValueError as exc:
        print(f"training-set: --as-of: {exc}", file=sys.stderr)
        return Exit.USAGE
    rows = build(months, args.entities, out, args.feature_service, file_format=args.format)
    if rows == 0:
        print(f"no users found for {args.entities or ' '.join(args.as_of)}", file=sys.stderr)
        return Exit.FAILED
    return Exit.DONE


@command(
    "check-skew",
    "Online values == historical values at the latest as_of, for every user (exit 1 on any difference)",
    "streamflow check-skew",
)
@arguments(lambda p: p.add_argument("--feature-service", default="churn_model_v1"))
@reads_feast
def check_skew(args) -> Exit:
    from streamflow.features.skew import skew

    users, differences = skew(service_name=args.feature_service)
    for user_id, feature, offline_value, online_value in differences[:20]:
        print(f"SKEW {user_id} {feature}: offline {offline_value!r} != online {online_value!r}")
    print(f"checked {users:,} users: {len(differences)} differing values")
    return Exit.FAILED if differences else Exit.DONE


@command(
    "collect-served",
    "The API's served log (closed spool files of SERVED_LOG_DIR) into the offline engine, each once",
    "streamflow collect-served",
)
def collect_served(args) -> Exit:
    from streamflow.served.collect import collect

    landed = collect()
    print(f"collected {len(landed)} spool file(s): {sum(landed.values()):,} served rows")
    return Exit.DONE


@command(
    "replay-served",
    "Served values held to the offline tables at the time they were served (exit 1 on any skew)",
    "streamflow replay-served",
)
def replay_served(args) -> Exit:
    from streamflow.background import wait_for_room, yield_the_cpu

    yield_the_cpu()
    waited = wait_for_room()  # before Feast's import too
    from streamflow.features.feast_import import import_for_reading

    import_for_reading()
    from streamflow.served.replay import replay

    replayed = replay()
    for (view, feature), counts in sorted(replayed.by_feature().items()):
        shown = ", ".join(f"{outcome} {n:,}" for outcome, n in sorted(counts.items()))
        print(f"{view}.{feature}: {shown}")
    for view, feature, outcome, user, served_at, *_, served, offline in replayed.examples:
        if outcome == "skew":
            when = f"{served_at:%Y-%m-%d %H:%M:%S}"
            print(f"SKEW {view}.{feature} {user} served {served!r} at {when}, offline {offline!r}")
    print(f"replayed {replayed.rows:,} served rows: {replayed.defects():,} skewed values "
          f"(waited {waited + replayed.waited_s:.1f}s for room beside other work)")  # fmt: skip
    return Exit.FAILED if replayed.defects() else Exit.DONE


# -- quality and documentation ----------------------------------------------------------------------
@command(
    "monitor",
    "Feast's metrics per view per as_of month, drift against the baseline (MONITOR_BASELINE)",
    "streamflow monitor",
    "streamflow monitor --full",
)
@arguments(lambda p: p.add_argument("--full", action="store_true", help="every month again"))
@reads_feast
def monitor(args) -> Exit:
    from streamflow.quality import monitor

    monitor.run(full=args.full).log()
    return Exit.DONE


@command(
    "report", "data/reports/feature_quality.html: distributions, nulls, drift (one file)", "streamflow report"
)
@reads_feast
def report(args) -> Exit:
    from streamflow.quality import report

    path = report.write()
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, no network needed)")
    return Exit.DONE


@command(
    "docs",
    "dbt docs with lineage to the exposures, static: data/reports/dbt-docs/index.html",
    "streamflow docs",
)
def docs(args) -> Exit:
    from streamflow import dbt

    print(f"wrote {dbt.generate_docs()}: open it in a browser (no server needed)")
    return Exit.DONE


@command("ui", "Feast's UI, read-only, on 127.0.0.1:UI_PORT", "streamflow ui", "streamflow ui --port 9999")
@arguments(lambda p: p.add_argument("--port", type=int, help="default: UI_PORT"))
def ui(args) -> Exit:
    import uvicorn

    from streamflow.features import ui
    from streamflow.features.store import feature_store

    port = args.port or config.get(config.UI_PORT)
    app = ui.app(feature_store())
    print(f"Feast UI (read-only) on http://127.0.0.1:{port}/", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    return Exit.DONE


# -- data, definitions and local servers ---------------------------------------------------------
def _generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=7043)
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("data/generated"))


@command(
    "generate-data",
    "Deterministic exports in the real format, any size",
    "streamflow generate-data --users 1000000 --months 2 --out data/big",
)
@arguments(_generate_arguments)
def generate_data(args) -> Exit:
    from streamflow.generate import generate

    generate(args.out, args.users, args.months, args.seed)
    print(f"generated {args.users:,} users x {args.months} months (seed {args.seed}) in {args.out}")
    return Exit.DONE


def _repo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    parser.add_argument("--manifest", type=Path, help="use this manifest instead of running dbt parse")


@command(
    "generate-feast-repo",
    "feature_repo/data_sources.py and feature_views.py from the dbt YAML",
    "streamflow generate-feast-repo",
    "streamflow generate-feast-repo --check",
)
@arguments(_repo_arguments)
def generate_feast_repo(args) -> Exit:
    from streamflow import dbt
    from streamflow.features.feast_repo_gen import MANIFEST, rendered

    if args.manifest is None and not dbt.run(["parse", "--quiet"]):
        return Exit.FAILED
    files = rendered(args.manifest or MANIFEST)
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(
                f"{path.relative_to(config.PROJECT_ROOT)} is out of sync with the dbt YAML", file=sys.stderr
            )
        return Exit.FAILED if stale else Exit.DONE
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(config.PROJECT_ROOT)}")
    return Exit.DONE
