"""Build a point-in-time-correct training set through Feast.

    python -m scripts.build_training_dataset                          # users at as_of 2024-01-31
    python -m scripts.build_training_dataset --as-of 2024-02-29 2024-03-31
    python -m scripts.build_training_dataset --as-of 2024-01-31..2024-12-31 --format parquet
    python -m scripts.build_training_dataset --as-of all              # every labelled month
    python -m scripts.build_training_dataset --entities my_entities.csv   # user_id,event_timestamp

Writes `user_id, event_timestamp, <every churn_model_v1 feature>, churn_label`, one row per
(user, as_of), to data/processed/training_df.csv (.parquet with --format parquet), or --out.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from streamflow.database import DatabaseUnreachable
from streamflow.exports import FIRST_AS_OF
from streamflow.features.training import DEFAULT_OUT, DEFAULT_SERVICE, build, labelled_months


def as_ofs(values: list[str]) -> list[date] | None:
    """Dates, FROM..TO ranges of the labelled months, or `all` (None: every labelled month)."""
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", nargs="+", default=[FIRST_AS_OF.isoformat()], metavar="DATE|FROM..TO|all")
    parser.add_argument("--entities", type=Path, help="CSV of user_id,event_timestamp (instead of --as-of)")
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--feature-service", default=DEFAULT_SERVICE)
    args = parser.parse_args(argv)
    out = args.out or (DEFAULT_OUT.with_suffix(".parquet") if args.format == "parquet" else DEFAULT_OUT)
    try:
        try:
            months = as_ofs(args.as_of)
        except ValueError as exc:
            parser.error(f"--as-of: {exc}")
        rows = build(months, args.entities, out, args.feature_service, file_format=args.format)
    except DatabaseUnreachable as exc:
        print(f"training set stopped: {exc}", file=sys.stderr)
        return 2
    if rows == 0:
        print(f"no users found for {args.entities or ' '.join(args.as_of)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
