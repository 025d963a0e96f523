"""What the platform writes is its user's alone, whatever the shell's umask: the command line (and
so every server it starts) creates files 0600 and folders 0700."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from streamflow import config


def test_files_a_command_writes_are_private_under_a_world_readable_umask(tmp_path):
    out = tmp_path / "exports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamflow",
            "generate-data",
            "--users",
            "5",
            "--months",
            "1",
            "--out",
            str(out),
        ],
        cwd=config.PROJECT_ROOT,
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(0o022),  # a shell's usual: files 0644, folders 0755
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    written = [out, *out.rglob("*")]
    assert len(written) > 6
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
