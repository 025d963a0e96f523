{{ config(**mart_config()) }}
{{ quality_gate() }}

with support as (
    select * from {{ ref('stg_streamflow__support_agg_90d') }}
    {% if is_incremental() %}
        where {{ in_build_months() }}
    {% endif %}
),

final as (
    select
        user_id,
        as_of,
        feature_timestamp,
        support_tickets_90d,
        ticket_avg_resolution_hrs_90d
    from support
)

select * from final
{{ in_key_order() }}
