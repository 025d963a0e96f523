{{ config(**mart_config()) }}
{{ quality_gate() }}

with labels as (
    select * from {{ ref('stg_streamflow__labels') }}
    {% if is_incremental() %}
        where {{ in_build_months() }}
    {% endif %}
),

final as (
    select
        user_id,
        as_of,
        feature_timestamp,
        churn_label
    from labels
)

select * from final
{{ in_key_order() }}
