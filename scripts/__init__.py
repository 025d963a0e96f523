"""Scripts run by file, as the course ran them (`python scripts/build_training_dataset.py`): each
is one call of the `streamflow` command line (streamflow/cli/)."""
