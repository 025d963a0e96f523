"""Run dbt with the project's database settings: `python -m scripts.run_dbt build ...` (default: build)."""

from __future__ import annotations

import sys

from streamflow import dbt


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv) or ["build"]
    return 0 if dbt.run(args) else 1


if __name__ == "__main__":
    sys.exit(main())
