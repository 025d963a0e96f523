"""StreamFlow's feature platform library: settings, PostgreSQL, ingest, dbt and Feast steps.

The commands in `scripts/` and the API in `serving/` use it; it uses neither.
"""
