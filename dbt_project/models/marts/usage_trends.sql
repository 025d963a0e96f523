{{ feature_mart() }}

-- Reads the usage snapshots behind the quality gate, as usage_agg_30d does (its columns as they
-- are), rather than that mart: the two then build side by side instead of one after the other
-- (a new month at 1M users: ~4 s of the build). An incremental build writes the build months and
-- the month after each (its change is measured against them), so it reads the month before each
-- of those too.
with usage as ({{ build_months_of('stg_streamflow__usage_agg_30d', shifts=[-1, 0, 1]) }}),

with_previous_month as (
    select
        {{ mart_key() }},
        watch_hours_30d,
        rebuffer_events_7d,
        lag(as_of) over by_user as previous_as_of,
        lag(watch_hours_30d) over by_user as previous_watch_hours_30d,
        lag(rebuffer_events_7d) over by_user as previous_rebuffer_events_7d
    from usage
    window by_user as (partition by user_id order by as_of)
),

final as (
    -- A change is only month-over-month when the previous snapshot is the previous month end;
    -- after a gap (or in a user's first month) it is unknown, not zero.
    select
        user_id,
        as_of,
        feature_timestamp,
        case
            when previous_as_of = {{ previous_month_end('as_of') }}
                then watch_hours_30d - previous_watch_hours_30d
        end as watch_hours_30d_mom_change,
        case
            when previous_as_of = {{ previous_month_end('as_of') }}
                then rebuffer_events_7d - previous_rebuffer_events_7d
        end as rebuffer_events_7d_mom_change
    from with_previous_month
)

select * from final
{% if is_incremental() %}
    where {{ in_build_months(shifts=[0, 1]) }}
{% endif %}
{{ in_key_order() }}
