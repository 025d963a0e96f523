"""On the machine running `make test`, its first step's check holds: every system package the
suite uses is there (as root, `make test` installed what was missing before this ran)."""

from __future__ import annotations

import subprocess

from streamflow import targets


def test_every_system_package_the_suite_uses_is_present():
    done = subprocess.run(
        [str(targets.PROJECT_ROOT / "scripts" / "prerequisites.sh"), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
