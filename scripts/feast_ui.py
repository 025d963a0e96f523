"""Feast's UI for this repository on 127.0.0.1:UI_PORT (default 8888), read-only: the feature
views, services, entities and the monitoring pages `make monitor` fills.

    python -m scripts.feast_ui
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from streamflow import config
from streamflow.database import DatabaseUnreachable
from streamflow.features import ui
from streamflow.features.store import feature_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=config.get(config.UI_PORT))
    args = parser.parse_args(argv)
    try:
        app = ui.app(feature_store())
    except DatabaseUnreachable as exc:
        print(f"ui stopped: {exc}", file=sys.stderr)
        return 2
    print(f"Feast UI (read-only) on http://127.0.0.1:{args.port}/", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
