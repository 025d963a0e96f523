"""`make test`'s first step (scripts/prerequisites.sh, shared with .ci/run): the system packages
it needs, checked in a second; missing ones named in one line with the command that installs
them, when the script may not install them itself."""

from __future__ import annotations

import shutil
import subprocess
import time

from streamflow import targets

SCRIPT = targets.PROJECT_ROOT / "scripts" / "prerequisites.sh"


def test_missing_packages_are_named_in_one_line_within_seconds(tmp_path):
    bare = tmp_path / "bin"  # a PATH with a shell and nothing the tests need (no apt-get either)
    bare.mkdir()
    for tool in ("bash", "id"):
        (bare / tool).symlink_to(shutil.which(tool))
    started = time.monotonic()
    done = subprocess.run(
        [str(bare / "bash"), str(SCRIPT)], env={"PATH": str(bare)}, capture_output=True, text=True, timeout=30
    )
    assert time.monotonic() - started < 5
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    for package in ("openssl", "redis-server", "chromium", "openjdk-17-jre-headless", "prometheus"):
        assert package in line
    assert "install: sudo apt-get install" in line


def test_check_only_never_installs(tmp_path):
    """--check reports like a non-root run, even as root with apt-get on the PATH."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "id", "apt-get"):
        (bare / tool).symlink_to(tmp_path / "refuse" if tool == "apt-get" else shutil.which(tool))
    (tmp_path / "refuse").write_text("#!/bin/sh\necho apt-get must not run >&2\nexit 99\n")
    (tmp_path / "refuse").chmod(0o755)
    done = subprocess.run(
        [str(bare / "bash"), str(SCRIPT), "--check"], env={"PATH": str(bare)}, capture_output=True, text=True
    )
    assert done.returncode == 1 and "apt-get must not run" not in done.stderr
    assert "redis-server" in done.stderr


def test_a_python_without_venv_is_named_with_its_package_in_one_line(tmp_path):
    """Debian's and Ubuntu's system Python ships without ensurepip: `make demo` says what to install."""
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\nexit 1\n")  # as such a Python answers `import ensurepip`
    python.chmod(0o755)
    done = subprocess.run(
        ["make", "--no-print-directory", f"UV={tmp_path / 'uv'}", f"PYTHON={python}", str(tmp_path / "uv")],
        cwd=targets.PROJECT_ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0 and not (tmp_path / "uv").exists()
    assert "has no venv module" in done.stdout and "apt-get install python3-venv" in done.stdout, done
