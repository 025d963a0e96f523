{#-
    How a feature mart is stored, per engine (each mart's first line: `config(**mart_config())`).
    A build writes only the months loaded or restated since the last good build, whole months;
    `dbt build --full-refresh` rewrites every month. The default (PostgreSQL): delete+insert
    keyed on as_of. Spark: Parquet tables partitioned by as_of, each build month's partition
    overwritten.
-#}
{% macro mart_config() %}
    {%- if adapter is not defined -%}{{ return(default__mart_config()) }}{%- endif -%}
    {{- return(adapter.dispatch('mart_config', 'streamflow')()) -}}
{% endmacro %}

{% macro default__mart_config() %}
    {{- return({'incremental_strategy': 'delete+insert', 'unique_key': 'as_of'}) -}}
{% endmacro %}

{% macro spark__mart_config() %}
    {{- return({
        'incremental_strategy': 'insert_overwrite', 'partition_by': ['as_of'], 'file_format': 'parquet'
    }) -}}
{% endmacro %}
