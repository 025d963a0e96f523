"""The served log on the Spark engine: the lake's files (engines/lake_served.py: one Parquet file
per spool file, each row numbered) read as a temporary view per selection."""

from __future__ import annotations

import re

from streamflow.engines.lake_served import served_dir
from streamflow.engines.spark.session import session


def tables() -> dict[str, str]:
    """Each selection's files as a temporary view of this process's session, its schema merged
    over the files (a service `feast apply` changed has more columns in its newer files)."""
    folders = sorted(p for p in served_dir().iterdir() if p.is_dir()) if served_dir().is_dir() else []
    views = {}
    for folder in folders:
        if not any(folder.glob("*.parquet")):
            continue
        view = "served_" + re.sub(r"\W", "_", folder.name)
        session().read.option("mergeSchema", "true").parquet(str(folder)).createOrReplaceTempView(view)
        views[folder.name] = f"`{view}`"
    return views
