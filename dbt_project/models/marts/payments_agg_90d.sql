{{ config(**mart_config()) }}
{{ quality_gate() }}

with payments as (
    select * from {{ ref('stg_streamflow__payments_agg_90d') }}
    {% if is_incremental() %}
        where {{ in_build_months() }}
    {% endif %}
),

final as (
    select
        user_id,
        as_of,
        feature_timestamp,
        failed_payments_90d
    from payments
)

select * from final
{{ in_key_order() }}
