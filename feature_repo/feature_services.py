"""Feature services: what the churn model trains on and what the API serves by default."""

from feast import FeatureService
from feature_views import (
    payments_agg_90d_fv,
    subs_profile_fv,
    support_agg_90d_fv,
    usage_agg_30d_fv,
    usage_trends_fv,
)

churn_model_v1 = FeatureService(
    name="churn_model_v1",
    features=[subs_profile_fv, usage_agg_30d_fv, payments_agg_90d_fv, support_agg_90d_fv, usage_trends_fv],
    description="Every feature of the churn model: the course's 14 plus the dbt-derived trends.",
    owner="ml-platform@streamflow.example",
    tags={"model": "churn", "consumer": "training"},
)

churn_api_v1 = FeatureService(
    name="churn_api_v1",
    features=[subs_profile_fv, usage_agg_30d_fv, payments_agg_90d_fv, support_agg_90d_fv],
    description="The course's 14 features, served by GET /features/{user_id} by default.",
    owner="ml-platform@streamflow.example",
    tags={"model": "churn", "consumer": "features_api"},
)
