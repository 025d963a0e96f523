"""The feature quality report: data/reports/feature_quality.html, one self-contained file.

python -m scripts.report     # after `make monitor` (the pipeline runs it)
"""

from __future__ import annotations

import argparse
import sys

from streamflow.database import DatabaseUnreachable
from streamflow.quality import report


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    try:
        path = report.write()
    except (report.ReportError, DatabaseUnreachable) as exc:
        print(f"report stopped: {exc}", file=sys.stderr)
        return 3
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, no network needed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
