{{ config(**mart_config()) }}
{{ quality_gate() }}

with subscriptions as (
    select * from {{ ref('stg_streamflow__subscriptions') }}
    {% if is_incremental() %}
        where {{ in_build_months() }}
    {% endif %}
),

final as (
    select
        user_id,
        as_of,
        feature_timestamp,
        months_active,
        monthly_fee,
        paperless_billing,
        plan_stream_tv,
        plan_stream_movies,
        net_service,
        contract_type
    from subscriptions
)

select * from final
{{ in_key_order() }}
