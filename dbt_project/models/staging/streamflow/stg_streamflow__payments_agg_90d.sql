with source as (
    select * from {{ source('streamflow', 'payments_agg_90d_snapshots') }}
),

renamed as (
    select
        user_id,
        as_of,
        (as_of::timestamp at time zone 'UTC') as feature_timestamp,
        failed_payments_90d,
        loaded_at
    from source
)

select * from renamed
