{#-
    A staging model of one raw snapshot table (rename and cast only): the grain, the month's
    feature_timestamp (as_of at 00:00 UTC, what Feast reads as the event time), `columns` as
    loaded, and when they were loaded. One place for the cast, so an engine with another SQL
    dialect changes it once.
-#}
{% macro snapshot_staging(table, columns) %}
with source as (
    select * from {{ source('streamflow', table) }}
),

renamed as (
    select
        user_id,
        as_of,
        {{ utc_midnight('as_of') }} as feature_timestamp,
        {%- for column in columns %}
        {{ column }},
        {%- endfor %}
        loaded_at
    from source
)

select * from renamed
{% endmacro %}
