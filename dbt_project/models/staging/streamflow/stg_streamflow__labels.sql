{{ snapshot_staging('labels_snapshots', ['churn_label']) }}
