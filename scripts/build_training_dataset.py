"""The course's training-set script, kept by name: `python scripts/build_training_dataset.py
[--as-of ...]` is `streamflow training-set [--as-of ...]` (see `streamflow training-set --help`)."""

import sys

from streamflow.cli import main

if __name__ == "__main__":
    sys.exit(main(["training-set", *sys.argv[1:]]))
