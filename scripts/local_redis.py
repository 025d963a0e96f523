"""Start or stop the project's own Redis: `python -m scripts.local_redis up|down|status`.

A 3-master cluster on 127.0.0.1:17001-17003 (one node on 16379 with REDIS_CLUSTER=0), its data
under .streamflow/redis. Starting it twice is harmless.
"""

from __future__ import annotations

import argparse
import sys

from streamflow import config
from streamflow.online import redis_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    action = parser.parse_args(argv).action
    cluster = config.get(config.REDIS_CLUSTER)
    server = redis_server.default_server(cluster is not False)
    try:
        if action == "up":
            print(server.up())
        elif action == "down":
            print("redis stopped" if server.down() else "redis was not running")
        else:
            running = [p for p in server.ports if server.pid(p)]
            print(f"redis nodes running: {running or 'none'} (data {server.root})")
            return 0 if len(running) == len(server.ports) else 3
    except redis_server.RedisServerMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
