{{ snapshot_staging('users_snapshots', [
    'signup_date',
    'user_gender',
    'user_is_senior',
    'has_family',
    'has_dependents',
]) }}
