"""GENERATED from the dbt manifest by streamflow/features/feast_repo_gen.py: do not edit.

One PostgreSQLSource per dbt feature mart.
Change the dbt marts' YAML (dbt_project/models/marts/) and run
`.venv/bin/python -m scripts.generate_feast_repo`; a test fails when this file is stale.
"""

from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

payments_agg_90d_source = PostgreSQLSource(
    name="payments_agg_90d_source",
    table="features.payments_agg_90d",
    timestamp_field="feature_timestamp",
    description="Payment health over the 90 days before each as_of.",
    owner="ml-platform@streamflow.example",
    tags={"dbt_model": "model.streamflow.payments_agg_90d"},
)

subs_profile_source = PostgreSQLSource(
    name="subs_profile_source",
    table="features.subs_profile",
    timestamp_field="feature_timestamp",
    description="Subscription profile of each user at each month-end as_of.",
    owner="ml-platform@streamflow.example",
    tags={"dbt_model": "model.streamflow.subs_profile"},
)

support_agg_90d_source = PostgreSQLSource(
    name="support_agg_90d_source",
    table="features.support_agg_90d",
    timestamp_field="feature_timestamp",
    description="Support contacts over the 90 days before each as_of.",
    owner="ml-platform@streamflow.example",
    tags={"dbt_model": "model.streamflow.support_agg_90d"},
)

usage_agg_30d_source = PostgreSQLSource(
    name="usage_agg_30d_source",
    table="features.usage_agg_30d",
    timestamp_field="feature_timestamp",
    description="Viewing behaviour over the 30 (and 7) days before each as_of.",
    owner="ml-platform@streamflow.example",
    tags={"dbt_model": "model.streamflow.usage_agg_30d"},
)

usage_trends_source = PostgreSQLSource(
    name="usage_trends_source",
    table="features.usage_trends",
    timestamp_field="feature_timestamp",
    description="Derived month-over-month changes in usage (window over as_of).",
    owner="ml-platform@streamflow.example",
    tags={"dbt_model": "model.streamflow.usage_trends"},
)
