"""Write deterministic StreamFlow exports in the real format, at any size.

python -m scripts.generate_data --users 7043 --months 2 --seed 42 --out data/generated
"""

from __future__ import annotations

import argparse
from pathlib import Path

from streamflow.generate import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=7043)
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("data/generated"))
    args = parser.parse_args(argv)
    generate(args.out, args.users, args.months, args.seed)
    print(f"generated {args.users:,} users x {args.months} months (seed {args.seed}) in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
