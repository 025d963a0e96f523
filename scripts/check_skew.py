"""Training/serving skew check: for every user, the online values equal the historical values
at the latest as_of. Prints the mismatches and exits 1 when there are any.

    python -m scripts.check_skew [--feature-service churn_model_v1]
"""

from __future__ import annotations

import argparse
import math
import sys

from psycopg import sql

from scripts import database
from scripts.build_training_dataset import DEFAULT_SERVICE, historical_features

FLOAT_TOLERANCE = 1e-9  # Float64 end to end: values must be equal, not merely close


def _same(a, b) -> bool:
    missing_a = a is None or (isinstance(a, float) and math.isnan(a))
    missing_b = b is None or (isinstance(b, float) and math.isnan(b))
    if missing_a or missing_b:
        return missing_a and missing_b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    return a == b


def skew(store, service_name: str = DEFAULT_SERVICE) -> tuple[int, list[tuple[str, str, object, object]]]:
    """(users compared, [(user_id, feature, offline, online)] that differ)."""
    with database.connect() as conn:
        query = sql.SQL(
            "select user_id, feature_timestamp as event_timestamp from features.churn_labels "
            "where as_of = (select max(as_of) from features.churn_labels)"
        ).as_string(conn)
    offline = historical_features(store, query, service_name)
    service = store.get_feature_service(service_name)
    online = store.get_online_features(
        features=service, entity_rows=[{"user_id": u} for u in offline["user_id"]]
    ).to_dict()
    features = [f.name for p in service.feature_view_projections for f in p.features]
    differences = []
    records = offline.astype(object).where(offline.notna(), None).to_dict("records")
    for i, row in enumerate(records):
        for feature in features:
            if not _same(row[feature], online[feature][i]):
                differences.append((row["user_id"], feature, row[feature], online[feature][i]))
    return len(records), differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feature-service", default=DEFAULT_SERVICE)
    args = parser.parse_args(argv)
    from scripts.feast_steps import feature_store

    users, differences = skew(feature_store(), args.feature_service)
    for user_id, feature, offline_value, online_value in differences[:20]:
        print(f"SKEW {user_id} {feature}: offline {offline_value!r} != online {online_value!r}")
    print(f"checked {users:,} users: {len(differences)} differing values")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
