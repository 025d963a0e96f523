{{ config(**mart_config()) }}
{{ quality_gate() }}

with usage as (
    select * from {{ ref('stg_streamflow__usage_agg_30d') }}
    {% if is_incremental() %}
        where {{ in_build_months() }}
    {% endif %}
),

final as (
    select
        user_id,
        as_of,
        feature_timestamp,
        watch_hours_30d,
        avg_session_mins_7d,
        unique_devices_30d,
        skips_7d,
        rebuffer_events_7d
    from usage
)

select * from final
{{ in_key_order() }}
