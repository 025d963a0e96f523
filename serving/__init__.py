"""The StreamFlow features API (Litestar), reading the online store through the `streamflow` library.

The API reads Feast's registry and never evaluates a feature repository's definitions, so Feast is
imported here without typeguard's checks of those definitions' arguments
(streamflow/features/feast_import.py): a worker starts ~2 s sooner. The metrics module comes
first: importing Feast sets PROMETHEUS_MULTIPROC_DIR, and the metrics mode is fixed before it.
"""

from serving import metrics  # noqa: F401  first: fixes the metrics mode before Feast is imported
from streamflow.features.feast_import import import_for_reading

import_for_reading()
