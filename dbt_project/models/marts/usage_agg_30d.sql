{{ feature_mart() }}

with usage as ({{ build_months_of('stg_streamflow__usage_agg_30d') }}),

final as (
    select
        {{ mart_key() }},
        watch_hours_30d,
        avg_session_mins_7d,
        unique_devices_30d,
        skips_7d,
        rebuffer_events_7d
    from usage
)

select * from final
{{ in_key_order() }}
