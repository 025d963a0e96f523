"""Feast steps in one process (importing feast costs seconds).

    python -m scripts.feast_steps apply          # feast apply, then the API role's grants
    python -m scripts.feast_steps materialize    # every as_of of the marts, oldest first

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
    args = parser.parse_args(argv)
    try:
        if args.step == "apply":
            apply()
        else:
            materialize()
    except (StepRefused, DatabaseUnreachable) as exc:
        print(f"{args.step} refused: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
