{#-
    The months a build writes. With `--vars '{build_months: [...]}'` (the pipeline passes them),
    those; else the months loaded or restated since the last successful build, where the engine
    can read its logs in SQL (PostgreSQL: the ingest log against the build log), or every month
    (none). Only incremental runs ask: a full refresh or a first build writes every month.
-#}
{% macro build_months() %}
    {%- set given = var('build_months', none) -%}
    {%- if given is not none -%}
        {{ return(given | list) }}
    {%- endif -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {{ return(adapter.dispatch('months_since_last_build', 'streamflow')()) }}
{% endmacro %}

{#- Spark: the logs live in PostgreSQL, out of dbt's reach; without the var, every month. -#}
{% macro default__months_since_last_build() %}
    {{ return(none) }}
{% endmacro %}

{% macro postgres__months_since_last_build() %}
    {%- set query -%}
        select distinct to_char(as_of, 'YYYY-MM-DD')
        from {{ source('streamflow', 'ingest_log') }}
        where loaded_at > coalesce(
            (select max(raw_loaded_at) from {{ target.schema }}.dbt_build_log where succeeded),
            '-infinity'
        )
        order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | list) }}
{% endmacro %}

{#- The month end `shift` months after the month end `day` (both YYYY-MM-DD). -#}
{% macro shift_month_end(day, shift) %}
    {%- set index = (day[:4] | int) * 12 + (day[5:7] | int) - 1 + shift -%}
    {%- set year, month = index // 12, index % 12 + 1 -%}
    {%- set leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 -%}
    {%- set last_day = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] -%}
    {{ return("%04d-%02d-%02d" % (year, month, last_day)) }}
{% endmacro %}

{#-
    A filter on the build months as date literals (so the planner prunes partitions and uses the
    as_of index): `shifts` also takes the month ends that many months after each build month.
-#}
{% macro in_build_months(shifts=[0]) %}
    {%- set building = build_months() -%}
    {%- if building is none -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set months = [] -%}
    {%- for month in building -%}
        {%- for shift in shifts -%}
            {%- do months.append(shift_month_end(month, shift)) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if months | length == 0 -%}
        false
    {%- else -%}
        as_of in ({% for month in months | unique | sort %}{{ date_literal(month) }}{{ ", " if not loop.last }}{% endfor %})
    {%- endif -%}
{% endmacro %}

{#- A date literal both engines read (and PostgreSQL's planner prunes partitions with). -#}
{% macro date_literal(day) %}date '{{ day }}'{% endmacro %}
