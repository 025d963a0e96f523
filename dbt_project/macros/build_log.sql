{#- One row per dbt build: did every node pass, and on which raw load. -#}
{% macro create_build_log() %}
    create schema if not exists {{ target.schema }};
    create table if not exists {{ target.schema }}.dbt_build_log (
        invocation_id text primary key,
        command text not null,
        succeeded boolean not null,
        failures text,
        raw_loaded_at timestamptz,
        finished_at timestamptz not null default now()
    );
{% endmacro %}

{% macro record_build(results) %}
    {% if execute and flags.WHICH == 'build' %}
        {% set failed = [] %}
        {% for result in results %}
            {% if result.status in ['error', 'fail', 'runtime error', 'skipped'] %}
                {% do failed.append(result.node.name) %}
            {% endif %}
        {% endfor %}
        insert into {{ target.schema }}.dbt_build_log
            (invocation_id, command, succeeded, failures, raw_loaded_at)
        values (
            '{{ invocation_id }}',
            'build',
            {{ 'true' if failed | length == 0 else 'false' }},
            {{ "'" ~ (failed | join(', ')) | replace("'", "''") ~ "'" if failed else 'null' }},
            (select max(loaded_at) from {{ source('streamflow', 'ingest_log') }})
        )
    {% else %}
        select 1
    {% endif %}
{% endmacro %}
