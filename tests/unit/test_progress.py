"""streamflow/progress.py: a bar on a terminal, plain lines elsewhere (none for a short task),
records with LOG_FORMAT=json, nothing with PROGRESS=off; a step's own lines never torn by the bar."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from streamflow import generate, progress, targets


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(generate, "BLOCK", 1_000)  # 3 blocks of generation in a few milliseconds


def test_plain_lines_off_a_terminal(monkeypatch, capsys, tmp_path, small_blocks):
    monkeypatch.setenv("PROGRESS_SECONDS", "0")
    generate.generate(tmp_path, 3_000, 1)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(", ")[0] for line in lines] == [
        "  generate 1 months: 1,000/3,000 users (33%)",
        "  generate 1 months: 2,000/3,000 users (67%)",
        "  generate 1 months: 3,000/3,000 users (100%)",
    ]


def test_a_task_shorter_than_the_interval_prints_nothing(monkeypatch, capsys, tmp_path, small_blocks):
    monkeypatch.delenv("PROGRESS_SECONDS", raising=False)  # 10 s
    generate.generate(tmp_path, 3_000, 1)
    assert capsys.readouterr() == ("", "")


def test_json_records_with_log_format_json(monkeypatch, capsys):
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("PROGRESS_SECONDS", "0")
    with progress.task("ingest month_007", total=2, unit="files") as shown:
        shown.advance(rows=10)
        shown.advance(rows=5)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["event"], r["task"], r["done"], r["total"], r["unit"], r["rows"]) for r in records] == [
        ("progress", "ingest month_007", 1, 2, "files", 10),
        ("progress", "ingest month_007", 2, 2, "files", 15),
    ]


def test_off_shows_nothing(monkeypatch, capsys):
    monkeypatch.setenv("PROGRESS", "off")
    monkeypatch.setenv("PROGRESS_SECONDS", "0")
    with progress.task("training set", unit="rows") as shown:
        shown.advance(500)
    assert capsys.readouterr() == ("", "")
    assert shown.done == 500


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "lines"),
        ({"LOG_FORMAT": "json"}, "json"),
        ({"PROGRESS": "bar"}, "bar"),
        ({"PROGRESS": "off"}, "off"),
    ],
)
def test_auto_follows_the_terminal_and_the_log_format(monkeypatch, environment, expected):
    for name in ("PROGRESS", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert progress.mode() == expected  # pytest's stderr is not a terminal


def test_a_step_line_printed_under_a_bar_stays_whole(monkeypatch, capsys):
    monkeypatch.setenv("PROGRESS", "bar")
    with progress.task("materialize", total=2, unit="months") as shown:
        print("materialized as_of 2024-01-31: 7,043 users", flush=True)
        shown.advance(users=7_043)
        print("materialized as_of 2024-02-29: 7,043 users")
        shown.advance(users=7_043)
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "materialized as_of 2024-01-31: 7,043 users",
        "materialized as_of 2024-02-29: 7,043 users",
    ]
    assert "materialize:" in err and "0/2" in err and " months" in err


def test_a_terminal_gets_a_bar_that_is_gone_at_the_end(tmp_path):
    """A real pseudo-terminal: the bar redraws in place (carriage returns) and is cleared when the
    task ends, leaving the step's own output."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal's size
    script = (
        "from streamflow import generate\n"
        "generate.BLOCK = 1_000\n"
        f"generate.generate({str(tmp_path)!r}, 3_000, 1)\n"
        "print('generated')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PROGRESS", "LOG_FORMAT")}
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=follower, stderr=follower, cwd=targets.PROJECT_ROOT, env=env
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the child
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert child.wait(timeout=60) == 0
    text = seen.decode()
    assert "generate 1 months:" in text and "0/3000" in text and "\r" in text
    assert text.rstrip().endswith("generated")
