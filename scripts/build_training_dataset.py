"""Build a point-in-time-correct training set through Feast.

    python -m scripts.build_training_dataset                       # users at as_of 2024-01-31
    python -m scripts.build_training_dataset --as-of 2024-02-29
    python -m scripts.build_training_dataset --entities my_entities.csv   # user_id,event_timestamp

Writes `user_id, event_timestamp, <every churn_model_v1 feature>, churn_label` to
data/processed/training_df.csv (or --out).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from streamflow.database import DatabaseUnreachable
from streamflow.exports import FIRST_AS_OF
from streamflow.features.training import DEFAULT_OUT, DEFAULT_SERVICE, build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", type=date.fromisoformat, default=FIRST_AS_OF)
    parser.add_argument("--entities", type=Path, help="CSV of user_id,event_timestamp (instead of --as-of)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--feature-service", default=DEFAULT_SERVICE)
    args = parser.parse_args(argv)
    try:
        frame = build(args.as_of, args.entities, args.out, args.feature_service)
    except DatabaseUnreachable as exc:
        print(f"training set stopped: {exc}", file=sys.stderr)
        return 2
    if frame.empty:
        print(f"no users found for {args.entities or args.as_of}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
