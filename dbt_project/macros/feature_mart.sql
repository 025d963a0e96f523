{#-
    What every feature mart shares, so each model holds only what is its own.
    `feature_mart()`, each mart's first line: how it is stored (mart_config.sql) and the
    quality gate before it (quality_gate.sql). `build_months_of(model)`: the staging model's
    rows an incremental build reads (the build months; `shifts` adds the months around them).
    `mart_key()`: the grain every mart carries, (user_id, as_of) and Feast's event time.
-#}
{% macro feature_mart() %}
    {{- config(**mart_config()) -}}
    {{- quality_gate() -}}
{% endmacro %}

{% macro build_months_of(model, shifts=[0]) -%}
    select * from {{ ref(model) }}
    {%- if is_incremental() %} where {{ in_build_months(shifts) }}{% endif %}
{%- endmacro %}

{% macro mart_key() %}user_id, as_of, feature_timestamp{% endmacro %}
