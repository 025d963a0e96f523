{#- Rows that share the model's grain (e.g. user_id, as_of). -#}
{% test unique_grain(model, columns) %}
    select {{ columns | join(', ') }}, count(*) as n_rows
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}
