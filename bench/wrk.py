"""Run wrk (a C load generator, Debian package `wrk`) against a server, cycling over user ids."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Each request takes the next user id of the file (threads start at random places in it).
SCRIPT = """
local ids = {}
for line in io.lines("%(ids)s") do ids[#ids + 1] = line end
local i = math.random(#ids)
request = function()
  i = i %% #ids + 1
  %(request)s
end
"""
GET_REQUEST = 'return wrk.format("GET", "%(prefix)s" .. ids[i])'
FEAST_REQUEST = (
    'local body = \'{"feature_service": "churn_api_v1", "entities": {"user_id": ["\' .. ids[i] .. \'"]}}\'\n'
    '  return wrk.format("POST", "/get-online-features", {["Content-Type"] = "application/json"}, body)'
)
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int

    def line(self, name: str, extra: str = "", width: int = 44) -> str:
        """The benches' one-line summary of a contender's run."""
        return (
            f"  {name:{width}s} {self.requests_per_s:9,.0f} req/s  p50 {self.p50_ms:6.2f} ms  "
            f"p99 {self.p99_ms:7.2f} ms  non-2xx {self.non_2xx + self.socket_errors}{extra}"
        )


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`")
    return path


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * UNITS[unit]


def run(
    base_url: str,
    ids: list[str],
    seconds: int,
    connections: int = 16,
    feast: bool = False,
    prefix: str = "/features/",
) -> LoadResult:
    with tempfile.TemporaryDirectory() as tmp:
        ids_file = Path(tmp) / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        script = Path(tmp) / "load.lua"
        request = FEAST_REQUEST if feast else GET_REQUEST % {"prefix": prefix}
        script.write_text(SCRIPT % {"ids": ids_file, "request": request})
        out = subprocess.run(
            [
                require_wrk(),
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "--timeout",
                "5s",
                "-s",
                str(script),
                base_url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return parse(out)


def parse(out: str) -> LoadResult:
    """The figures of one wrk --latency report."""
    percentiles = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, flags=re.M))
    if not {"50", "99"} <= set(percentiles):
        raise RuntimeError(f"wrk printed no latency distribution:\n{out}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return LoadResult(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        requests=int(re.search(r"(\d+) requests in", out).group(1)),
        non_2xx=int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
    )
