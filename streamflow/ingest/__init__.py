"""Monthly CSV exports into schema `raw`: validate (validate.py), the tables (tables.py), load (load.py)."""

from streamflow.ingest.load import implied_as_of, load_all, load_month, month_dirs
from streamflow.ingest.validate import CheckedFile, IngestError, check_month

__all__ = [
    "CheckedFile",
    "IngestError",
    "check_month",
    "implied_as_of",
    "load_all",
    "load_month",
    "month_dirs",
]
