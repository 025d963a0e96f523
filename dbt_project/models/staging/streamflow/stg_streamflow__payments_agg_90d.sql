{{ snapshot_staging('payments_agg_90d_snapshots', ['failed_payments_90d']) }}
