"""dbt's docs site, static: data/reports/dbt-docs/index.html (lineage from the raw exports'
sources through staging and the feature marts to the exposures: the API and the training set).

    python -m scripts.docs
"""

from __future__ import annotations

import argparse
import sys

from streamflow import dbt
from streamflow.database import DatabaseUnreachable


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    try:
        index = dbt.generate_docs()
    except (RuntimeError, DatabaseUnreachable) as exc:
        print(f"docs stopped: {exc}", file=sys.stderr)
        return 3
    print(f"wrote {index}: open it in a browser (no server needed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
