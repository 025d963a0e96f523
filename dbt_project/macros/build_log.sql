{#-
    One row per dbt build: did every node pass, and which raw loads it read. The row is written
    when the build starts (raw_loaded_at: the newest load then, or the `raw_loaded_at` var the
    pipeline read with its build months) and completed when it ends; a month loaded while the
    build runs is newer than raw_loaded_at, so the next build takes it. A build that never ends
    stays "did not finish", and the materialize gate refuses until one succeeds.
-#}
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
    alter table {{ target.schema }}.dbt_build_log add column if not exists started_at timestamptz;
{% endmacro %}

{% macro start_build() %}
    {% if execute and flags.WHICH == 'build' %}
        {% set given = var('raw_loaded_at', none) %}
        insert into {{ target.schema }}.dbt_build_log
            (invocation_id, command, succeeded, failures, raw_loaded_at, started_at, finished_at)
        values (
            '{{ invocation_id }}',
            'build',
            false,
            'did not finish',
            {% if given is not none -%}
                {{ "'" ~ (given | string | replace("'", "''")) ~ "'" }}::timestamptz
            {%- else -%}
                (select max(loaded_at) from {{ source('streamflow', 'ingest_log') }})
            {%- endif %},
            now(),
            now()
        )
    {% else %}
        select 1
    {% endif %}
{% endmacro %}

{% macro record_build(results) %}
    {% if execute and flags.WHICH == 'build' %}
        {% set failed = [] %}
        {% for result in results %}
            {% if result.status in ['error', 'fail', 'runtime error', 'skipped'] %}
                {% do failed.append(result.node.name) %}
            {% endif %}
        {% endfor %}
        update {{ target.schema }}.dbt_build_log set
            succeeded = {{ 'true' if failed | length == 0 else 'false' }},
            failures = {{ "'" ~ (failed | join(', ')) | replace("'", "''") ~ "'" if failed else 'null' }},
            finished_at = now()
        where invocation_id = '{{ invocation_id }}'
    {% else %}
        select 1
    {% endif %}
{% endmacro %}
