{{ snapshot_staging('usage_agg_30d_snapshots', [
    'watch_hours_30d',
    'avg_session_mins_7d',
    'unique_devices_30d',
    'skips_7d',
    'rebuffer_events_7d',
]) }}
