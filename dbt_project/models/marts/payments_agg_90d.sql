{{ feature_mart() }}

with payments as ({{ build_months_of('stg_streamflow__payments_agg_90d') }}),

final as (
    select
        {{ mart_key() }},
        failed_payments_90d
    from payments
)

select * from final
{{ in_key_order() }}
