"""The main job in one process: database up, ingest every month, dbt build, then the Feast steps.

`make pipeline` runs it. Seeds come from `SEEDS_DIR` (a folder of month_NNN folders); without
it, the deterministic generator writes the same format to `data/generated` first. Safe to run
again: every step is idempotent.
"""

from __future__ import annotations

import argparse
import sys

from streamflow import ingest, pipeline
from streamflow.database import DatabaseUnreachable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-feast", action="store_true", help="stop after dbt build")
    args = parser.parse_args(argv)
    try:
        return pipeline.run(with_feast=not args.no_feast)
    except ingest.IngestError as exc:
        print(f"ingest aborted, nothing was written: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnreachable as exc:
        print(f"pipeline stopped, nothing was written: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
