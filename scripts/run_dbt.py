"""Run dbt with the project's database settings.

`python -m scripts.run_dbt` is the monthly build: the months loaded or restated since the last
good build, their data tests scoped to them. `python -m scripts.run_dbt build ...` runs any dbt
command as given (a plain build checks every month).
"""

from __future__ import annotations

import sys

from streamflow import dbt


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        return 0 if dbt.run(args) else 1
    built = dbt.build_incrementally()
    if built is None:
        print("no month loaded or restated since the last good build: the marts are current")
    return 1 if built is False else 0


if __name__ == "__main__":
    sys.exit(main())
