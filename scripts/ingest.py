"""Load monthly CSV exports into schema `raw`: live tables plus `<table>_snapshots` stamped with as_of.

    python -m scripts.ingest --month-dir DIR --as-of YYYY-MM-DD     # one month
    python -m scripts.ingest --seeds-dir DIR                        # every month_NNN, in order

A month is validated whole and loads in one transaction: a bad month changes nothing. Loading a
month again replaces its snapshot (a restatement); live tables only move forward in as_of.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from streamflow import ingest
from streamflow.database import DatabaseUnreachable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--month-dir", type=Path, help="one month folder of CSV exports")
    group.add_argument("--seeds-dir", type=Path, help="a folder of month_NNN folders")
    parser.add_argument("--as-of", type=date.fromisoformat, help="as_of of --month-dir (YYYY-MM-DD)")
    parser.add_argument("--force", action="store_true", help="reload months whose files were loaded already")
    args = parser.parse_args(argv)
    try:
        if args.month_dir:
            as_of = args.as_of or ingest.implied_as_of(args.month_dir)
            if as_of is None:
                parser.error("--as-of is required unless the folder is named month_NNN")
            ingest.load_month(args.month_dir, as_of, force=args.force)
        else:
            ingest.load_all(args.seeds_dir, force=args.force)
    except (ingest.IngestError, DatabaseUnreachable) as exc:
        print(f"ingest aborted, nothing was written: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
