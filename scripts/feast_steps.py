"""Feast steps in one process (importing feast costs seconds).

    python -m scripts.feast_steps apply          # feast apply, then the API role's grants
    python -m scripts.feast_steps materialize    # the months the online store lacks, oldest first
    python -m scripts.feast_steps materialize --full   # every month of the marts again

`materialize` refuses to run unless the last `dbt build` passed on the data now in `raw`.
"""

from __future__ import annotations

import argparse
import sys

from streamflow.database import DatabaseUnreachable
from streamflow.features.apply import apply
from streamflow.features.materialize import StepRefused, materialize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["apply", "materialize"])
    parser.add_argument("--full", action="store_true", help="materialize: every month, not only the new ones")
    args = parser.parse_args(argv)
    try:
        if args.step == "apply":
            apply()
        else:
            materialize(full=args.full)
    except (StepRefused, DatabaseUnreachable) as exc:
        print(f"{args.step} refused: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
