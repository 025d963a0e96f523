{#-
    Makes a feature mart wait for the tests of every staging model, not only its own parents:
    a month that fails any test then reaches no mart at all, so the marts never mix months.
-#}
{% macro quality_gate() %}
    {%- for model in [
        'stg_streamflow__users', 'stg_streamflow__subscriptions', 'stg_streamflow__usage_agg_30d',
        'stg_streamflow__payments_agg_90d', 'stg_streamflow__support_agg_90d', 'stg_streamflow__labels',
    ] %}
-- depends_on: {{ ref(model) }}
    {%- endfor %}
{% endmacro %}
