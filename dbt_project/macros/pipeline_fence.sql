{#-
    The pipeline lock's fence (streamflow/control/job_lock.py), a pre-hook of every mart: inside the
    mart's transaction, it holds the run's epoch share-locked, or fails the model when another
    run has taken the lock since this one lost it (a database restart). Outside a run, or on
    Spark (whose marts are not in PostgreSQL), it is nothing.
-#}
{% macro pipeline_fence() %}
    {%- set epoch = env_var('STREAMFLOW_PIPELINE_EPOCH', '') -%}
    {%- if epoch and target.type == 'postgres' -%}
        do $fence$ begin
            perform 1 from pipeline_lock.fence where epoch = {{ epoch | int }} for share;
            if not found then
                raise exception 'this run lost the pipeline lock and another run has taken it since';
            end if;
        end $fence$
    {%- endif -%}
{% endmacro %}
