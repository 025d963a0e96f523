{{ feature_mart() }}

with support as ({{ build_months_of('stg_streamflow__support_agg_90d') }}),

final as (
    select
        {{ mart_key() }},
        support_tickets_90d,
        ticket_avg_resolution_hrs_90d
    from support
)

select * from final
{{ in_key_order() }}
