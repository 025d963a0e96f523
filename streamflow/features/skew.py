"""Training/serving skew: for every user, the online values equal the historical values at the
latest as_of."""

from __future__ import annotations

import math

from streamflow import engines
from streamflow.features import DEFAULT_SERVICE
from streamflow.features.store import feature_store
from streamflow.features.training import historical_features, labelled_months

FLOAT_TOLERANCE = 1e-9  # Float64 end to end: values must be equal, not merely close


def _same(a, b) -> bool:
    missing_a = a is None or (isinstance(a, float) and math.isnan(a))
    missing_b = b is None or (isinstance(b, float) and math.isnan(b))
    if missing_a or missing_b:
        return missing_a and missing_b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    return a == b


def skew(
    store=None, service_name: str = DEFAULT_SERVICE
) -> tuple[int, list[tuple[str, str, object, object]]]:
    """(users compared, the values that differ between the offline and the online store)."""
    engine = engines.current()
    engine.feast_ready()
    store = store or feature_store()
    latest = labelled_months()[-1]
    offline = historical_features(store, engine.labelled_entities([latest]), service_name)
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
