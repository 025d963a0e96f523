"""Print `export` lines for the project's database settings, for running dbt or feast by hand:

eval "$(.venv/bin/python -m scripts.env)"
"""

from __future__ import annotations

import shlex

from streamflow.dbt import dbt_env
from streamflow.features.store import feast_env


def main() -> int:
    values = {**dbt_env(), **feast_env()}
    for name, value in values.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
