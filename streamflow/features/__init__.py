"""Feast on the dbt marts: the repo and its store (store.py), `feast apply` (apply.py), the online
store plugin over streamflow/online/ (online_store.py), materialize, training sets, the skew
check and the generator of the Feast definitions from the dbt manifest."""

DEFAULT_SERVICE = "churn_model_v1"  # the feature service training sets and the skew check read
