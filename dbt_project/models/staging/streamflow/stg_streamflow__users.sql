with source as (
    select * from {{ source('streamflow', 'users_snapshots') }}
),

renamed as (
    select
        user_id,
        as_of,
        (as_of::timestamp at time zone 'UTC') as feature_timestamp,
        signup_date,
        user_gender,
        user_is_senior,
        has_family,
        has_dependents,
        loaded_at
    from source
)

select * from renamed
