"""Generate Feast data sources and feature views from the dbt manifest.

python -m scripts.generate_feast_repo            # dbt parse, then write feature_repo/*.py
python -m scripts.generate_feast_repo --check    # exit 1 when the committed files are stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streamflow import dbt, settings
from streamflow.features.feast_repo_gen import MANIFEST, rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    parser.add_argument("--manifest", type=Path, help="use this manifest instead of running dbt parse")
    args = parser.parse_args(argv)
    if args.manifest is None and not dbt.run(["parse", "--quiet"]):
        return 1
    files = rendered(args.manifest or MANIFEST)
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(
                f"{path.relative_to(settings.PROJECT_ROOT)} is out of sync with the dbt YAML", file=sys.stderr
            )
        return 1 if stale else 0
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(settings.PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
