with source as (
    select * from {{ source('streamflow', 'subscriptions_snapshots') }}
),

renamed as (
    select
        user_id,
        as_of,
        (as_of::timestamp at time zone 'UTC') as feature_timestamp,
        months_active,
        plan_stream_tv,
        plan_stream_movies,
        contract_type,
        paperless_billing,
        monthly_fee,
        total_paid,
        net_service,
        loaded_at
    from source
)

select * from renamed
