{{ snapshot_staging('subscriptions_snapshots', [
    'months_active',
    'plan_stream_tv',
    'plan_stream_movies',
    'contract_type',
    'paperless_billing',
    'monthly_fee',
    'total_paid',
    'net_service',
]) }}
