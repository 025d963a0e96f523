"""GENERATED from the dbt manifest by streamflow/features/feast_repo_gen.py: do not edit.

One FeatureView per dbt feature mart, fields from its contract.
Change the dbt marts' YAML (dbt_project/models/marts/) and run
`.venv/bin/streamflow generate-feast-repo`; a test fails when this file is stale.
"""

from datetime import timedelta

from data_sources import (
    payments_agg_90d_source,
    subs_profile_source,
    support_agg_90d_source,
    usage_agg_30d_source,
    usage_trends_source,
)
from entities import user
from feast import FeatureView, Field
from feast.types import Bool, Float64, Int64, String

payments_agg_90d_fv = FeatureView(
    name="payments_agg_90d_fv",
    entities=[user],
    ttl=timedelta(days=45),
    schema=[
        Field(
            name="failed_payments_90d",
            dtype=Int64,
            description="Failed payments in the 90 days before as_of.",
        ),
    ],
    source=payments_agg_90d_source,
    online=True,
    description="Payment health over the 90 days before each as_of.",
    owner="ml-platform@streamflow.example",
    tags={"dbt_model": "model.streamflow.payments_agg_90d"},
)

subs_profile_fv = FeatureView(
    name="subs_profile_fv",
    entities=[user],
    ttl=timedelta(days=45),
    schema=[
        Field(
            name="months_active",
            dtype=Int64,
            description="Months the user has been subscribed, as of the snapshot.",
        ),
        Field(
            name="monthly_fee",
            dtype=Float64,
            description="Current monthly fee in USD (Float64: 29.85 stays 29.85).",
        ),
        Field(
            name="paperless_billing",
            dtype=Bool,
            description="Whether the user is billed paperless.",
        ),
        Field(
            name="plan_stream_tv",
            dtype=Bool,
            description="Whether the plan includes TV streaming; NULL when unknown (no internet service).",
        ),
        Field(
            name="plan_stream_movies",
            dtype=Bool,
            description="Whether the plan includes movie streaming; NULL when unknown (no internet service).",
        ),
        Field(
            name="net_service",
            dtype=String,
            description="Internet service of the plan: DSL, Fiber optic or No.",
        ),
    ],
    source=subs_profile_source,
    online=True,
    description="Subscription profile of each user at each month-end as_of.",
    owner="ml-platform@streamflow.example",
    tags={"dbt_model": "model.streamflow.subs_profile"},
)

support_agg_90d_fv = FeatureView(
    name="support_agg_90d_fv",
    entities=[user],
    ttl=timedelta(days=45),
    schema=[
        Field(
            name="support_tickets_90d",
            dtype=Int64,
            description="Support tickets opened in the 90 days before as_of.",
        ),
        Field(
            name="ticket_avg_resolution_hrs_90d",
            dtype=Float64,
            description="Average ticket resolution time in hours over the 90 days before as_of.",
        ),
    ],
    source=support_agg_90d_source,
    online=True,
    description="Support contacts over the 90 days before each as_of.",
    owner="ml-platform@streamflow.example",
    tags={"dbt_model": "model.streamflow.support_agg_90d"},
)

usage_agg_30d_fv = FeatureView(
    name="usage_agg_30d_fv",
    entities=[user],
    ttl=timedelta(days=45),
    schema=[
        Field(
            name="watch_hours_30d",
            dtype=Float64,
            description="Hours watched in the 30 days before as_of.",
        ),
        Field(
            name="avg_session_mins_7d",
            dtype=Float64,
            description="Average session length in minutes over the 7 days before as_of.",
        ),
        Field(
            name="unique_devices_30d",
            dtype=Int64,
            description="Distinct devices used in the 30 days before as_of.",
        ),
        Field(
            name="skips_7d",
            dtype=Int64,
            description="Titles skipped in the 7 days before as_of.",
        ),
        Field(
            name="rebuffer_events_7d",
            dtype=Int64,
            description="Rebuffering events in the 7 days before as_of.",
        ),
    ],
    source=usage_agg_30d_source,
    online=True,
    description="Viewing behaviour over the 30 (and 7) days before each as_of.",
    owner="ml-platform@streamflow.example",
    tags={"dbt_model": "model.streamflow.usage_agg_30d"},
)

usage_trends_fv = FeatureView(
    name="usage_trends_fv",
    entities=[user],
    ttl=timedelta(days=45),
    schema=[
        Field(
            name="watch_hours_30d_mom_change",
            dtype=Float64,
            description="watch_hours_30d minus its value at the previous month end; NULL in a user's first month or after a gap.",
        ),
        Field(
            name="rebuffer_events_7d_mom_change",
            dtype=Int64,
            description="rebuffer_events_7d minus its value at the previous month end; NULL in a user's first month or after a gap.",
        ),
    ],
    source=usage_trends_source,
    online=True,
    description="Derived month-over-month changes in usage (window over as_of).",
    owner="ml-platform@streamflow.example",
    tags={"dbt_model": "model.streamflow.usage_trends"},
)
