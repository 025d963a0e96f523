{#-
    Makes a feature mart wait for the tests of every staging model, not only its own parents:
    a month that fails any test then reaches no mart at all, so the marts never mix months.

    The refs must be known while dbt parses, before its graph is complete, so the gate names its
    models; when the build runs, dbt's graph is read and a staging model left out of this list
    stops the build with a message naming it, so the list cannot fall behind the project.
-#}
{% macro quality_gate() %}
    {%- set gated = [
        'stg_streamflow__users', 'stg_streamflow__subscriptions', 'stg_streamflow__usage_agg_30d',
        'stg_streamflow__payments_agg_90d', 'stg_streamflow__support_agg_90d', 'stg_streamflow__labels',
    ] -%}
    {%- for model in gated %}
-- depends_on: {{ ref(model) }}
    {%- endfor %}
    {#- a unit test's context has no graph: nothing to check there -#}
    {%- if execute and 'nodes' in graph -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.resource_type == 'model' and 'staging' in node.fqn and node.name not in gated -%}
                {{ exceptions.raise_compiler_error(
                    "staging model " ~ node.name ~ " is outside the quality gate: "
                    ~ "add it to dbt_project/macros/quality_gate.sql"
                ) }}
            {%- endif -%}
        {%- endfor -%}
    {%- endif %}
{% endmacro %}
