{#-
    dbt's freshness query, measured against a reference day: `--vars '{freshness_reference:
    YYYY-MM-DD}'` (the pipeline passes STREAMFLOW_TODAY when set, for replays of older exports),
    else now. The sources measure the data's own as_of (a date, at its midnight in UTC), not
    when it was loaded.
-#}
{% macro collect_freshness(source, loaded_at_field, filter) %}
    {%- set reference = var('freshness_reference', none) -%}
    {% call statement('collect_freshness', fetch_result=True, auto_begin=False) -%}
        select
            max({{ utc_midnight(loaded_at_field) }}) as max_loaded_at,
            {% if reference -%}
                {{ utc_midnight("date '" ~ reference ~ "'") }}
            {%- else -%}
                {{ current_timestamp() }}
            {%- endif %} as snapshotted_at
        from {{ source }}
        {% if filter %}where {{ filter }}{% endif %}
    {%- endcall %}
    {{ return(load_result('collect_freshness')) }}
{% endmacro %}
