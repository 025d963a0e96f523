"""`python -m streamflow <command>`: the same as the `streamflow` console script."""

import sys

from streamflow.cli import main

sys.exit(main())
