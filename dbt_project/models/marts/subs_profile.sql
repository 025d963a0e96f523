{{ feature_mart() }}

with subscriptions as ({{ build_months_of('stg_streamflow__subscriptions') }}),

final as (
    select
        {{ mart_key() }},
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
