"""Start, stop or show the project's own PostgreSQL: `python -m scripts.embedded_pg up|down|status|url`.

`up` with DATABASE_URL / PGHOST set prepares that database instead (schemas) and starts nothing.
"""

from __future__ import annotations

import argparse
import sys

from streamflow import embedded_pg, settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status", "url"])
    action = parser.parse_args(argv).action
    if action == "up":
        print(embedded_pg.up())
        return 0
    if not settings.uses_embedded():
        print(embedded_pg.not_in_use())
        return 0
    if action == "url":
        print(settings.admin_target().url)
        return 0
    server = embedded_pg.default_server()
    if action == "down":
        print("embedded PostgreSQL stopped" if server.stop() else "embedded PostgreSQL was not running")
        return 0
    running = server.is_running()
    state = "running" if running else "stopped"
    print(f"embedded PostgreSQL {state} (data {server.data_dir}, port {server.port})")
    return 0 if running else 3


if __name__ == "__main__":
    sys.exit(main())
