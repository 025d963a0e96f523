with source as (
    select * from {{ source('streamflow', 'usage_agg_30d_snapshots') }}
),

renamed as (
    select
        user_id,
        as_of,
        (as_of::timestamp at time zone 'UTC') as feature_timestamp,
        watch_hours_30d,
        avg_session_mins_7d,
        unique_devices_30d,
        skips_7d,
        rebuffer_events_7d,
        loaded_at
    from source
)

select * from renamed
