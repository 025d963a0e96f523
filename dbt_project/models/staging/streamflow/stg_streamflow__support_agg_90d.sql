{{ snapshot_staging('support_agg_90d_snapshots', [
    'support_tickets_90d',
    'ticket_avg_resolution_hrs_90d',
]) }}
