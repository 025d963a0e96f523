with source as (
    select * from {{ source('streamflow', 'labels_snapshots') }}
),

renamed as (
    select
        user_id,
        as_of,
        (as_of::timestamp at time zone 'UTC') as feature_timestamp,
        churn_label,
        loaded_at
    from source
)

select * from renamed
