{{ feature_mart() }}

with labels as ({{ build_months_of('stg_streamflow__labels') }}),

final as (
    select
        {{ mart_key() }},
        churn_label
    from labels
)

select * from final
{{ in_key_order() }}
