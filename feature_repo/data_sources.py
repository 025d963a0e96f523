"""GENERATED from the dbt manifest by streamflow/features/feast_repo_gen.py: do not edit.

One data source per dbt feature mart, of the kind the offline engine reads.
Change the dbt marts' YAML (dbt_project/models/marts/) and run
`.venv/bin/streamflow generate-feast-repo`; a test fails when this file is stale.
"""

from streamflow.engines import feast_sources

# Each mart's source arguments; the offline engine in use builds its kind of source.
MARTS = {
    "payments_agg_90d": dict(
        name="payments_agg_90d_source",
        table="features.payments_agg_90d",
        timestamp_field="feature_timestamp",
        description="Payment health over the 90 days before each as_of.",
        owner="ml-platform@streamflow.example",
        tags={"dbt_model": "model.streamflow.payments_agg_90d"},
    ),
    "subs_profile": dict(
        name="subs_profile_source",
        table="features.subs_profile",
        timestamp_field="feature_timestamp",
        description="Subscription profile of each user at each month-end as_of.",
        owner="ml-platform@streamflow.example",
        tags={"dbt_model": "model.streamflow.subs_profile"},
    ),
    "support_agg_90d": dict(
        name="support_agg_90d_source",
        table="features.support_agg_90d",
        timestamp_field="feature_timestamp",
        description="Support contacts over the 90 days before each as_of.",
        owner="ml-platform@streamflow.example",
        tags={"dbt_model": "model.streamflow.support_agg_90d"},
    ),
    "usage_agg_30d": dict(
        name="usage_agg_30d_source",
        table="features.usage_agg_30d",
        timestamp_field="feature_timestamp",
        description="Viewing behaviour over the 30 (and 7) days before each as_of.",
        owner="ml-platform@streamflow.example",
        tags={"dbt_model": "model.streamflow.usage_agg_30d"},
    ),
    "usage_trends": dict(
        name="usage_trends_source",
        table="features.usage_trends",
        timestamp_field="feature_timestamp",
        description="Derived month-over-month changes in usage (window over as_of).",
        owner="ml-platform@streamflow.example",
        tags={"dbt_model": "model.streamflow.usage_trends"},
    ),
}

SOURCES = feast_sources(MARTS)

payments_agg_90d_source = SOURCES["payments_agg_90d"]
subs_profile_source = SOURCES["subs_profile"]
support_agg_90d_source = SOURCES["support_agg_90d"]
usage_agg_30d_source = SOURCES["usage_agg_30d"]
usage_trends_source = SOURCES["usage_trends"]
