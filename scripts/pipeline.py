"""The main job in one process: database up, ingest every month, dbt build (then Feast steps).

`make pipeline` runs it. Seeds come from `SEEDS_DIR` (a folder of month_NNN folders); without
it, the deterministic generator writes the same format to `data/generated` first. Safe to run
again: every step is idempotent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from scripts import embedded_pg, ingest, run_dbt, settings

GENERATED_DIR = settings.PROJECT_ROOT / "data" / "generated"


def seeds_dir() -> Path:
    configured = os.environ.get("SEEDS_DIR")
    if configured:
        return Path(configured)
    if not (GENERATED_DIR / "month_000").exists():
        from scripts.generate_data import generate

        users = int(os.environ.get("GENERATED_USERS", "7043"))
        generate(GENERATED_DIR, users=users, months=2, seed=42)
        print(f"SEEDS_DIR not set: generated {users:,} users x 2 months in {GENERATED_DIR}")
    return GENERATED_DIR


def step(name: str) -> None:
    print(f"\n==> {name}", flush=True)


def run(with_feast: bool = True) -> int:
    started = time.perf_counter()
    step("database")
    embedded_pg.main(["up"])
    step("ingest")
    ingest.load_all(seeds_dir())
    step("dbt build")
    if not run_dbt.run(["build"]):
        print(
            "dbt build failed: the feature marts keep their last good data; stopping here.",
            file=sys.stderr,
        )
        return 1
    if with_feast:
        from scripts import feast_steps

        feast_steps.apply_materialize_train()
    print(f"\npipeline done in {time.perf_counter() - started:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-feast", action="store_true", help="stop after dbt build")
    args = parser.parse_args(argv)
    try:
        return run(with_feast=not args.no_feast)
    except ingest.IngestError as exc:
        print(f"ingest aborted, nothing was written: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
