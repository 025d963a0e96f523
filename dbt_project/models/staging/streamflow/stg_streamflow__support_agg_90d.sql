with source as (
    select * from {{ source('streamflow', 'support_agg_90d_snapshots') }}
),

renamed as (
    select
        user_id,
        as_of,
        (as_of::timestamp at time zone 'UTC') as feature_timestamp,
        support_tickets_90d,
        ticket_avg_resolution_hrs_90d,
        loaded_at
    from source
)

select * from renamed
