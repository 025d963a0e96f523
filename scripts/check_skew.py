"""Training/serving skew check: for every user, the online values equal the historical values
at the latest as_of. Prints the mismatches and exits 1 when there are any.

    python -m scripts.check_skew [--feature-service churn_model_v1]
"""

from __future__ import annotations

import argparse
import sys

from streamflow.database import DatabaseUnreachable
from streamflow.features.skew import skew
from streamflow.features.store import feature_store
from streamflow.features.training import DEFAULT_SERVICE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feature-service", default=DEFAULT_SERVICE)
    args = parser.parse_args(argv)
    try:
        users, differences = skew(feature_store(), args.feature_service)
    except DatabaseUnreachable as exc:
        print(f"check-skew stopped: {exc}", file=sys.stderr)
        return 2
    for user_id, feature, offline_value, online_value in differences[:20]:
        print(f"SKEW {user_id} {feature}: offline {offline_value!r} != online {online_value!r}")
    print(f"checked {users:,} users: {len(differences)} differing values")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
