"""Feature monitoring: Feast's metrics per feature view per as_of month, drift against the baseline.

    python -m scripts.monitor          # the months not monitored yet (new or reloaded), then drift
    python -m scripts.monitor --full   # every month again

MONITOR_BASELINE=YYYY-MM-DD picks the baseline month (default: the first);
DRIFT_THRESHOLD / DRIFT_WATCH_THRESHOLD set the levels (Jensen-Shannon distance, 0.1 / 0.05).
"""

from __future__ import annotations

import argparse
import sys

from streamflow.database import DatabaseUnreachable
from streamflow.quality import monitor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every month again, not only the new ones")
    args = parser.parse_args(argv)
    try:
        result = monitor.run(full=args.full)
    except (monitor.MonitorError, DatabaseUnreachable, ValueError) as exc:
        print(f"monitor stopped: {exc}", file=sys.stderr)
        return 3
    print("\n".join(result.describe()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
