"""The port allocator every test server and bench takes its port from (streamflow/processes.py):
a port held by one process is never handed to another, until that process is gone."""

from __future__ import annotations

import socket
import subprocess
import sys

from streamflow.processes import claim, free_cluster_ports, free_port

HOLDER = "from streamflow.processes import claim_ports; print(*claim_ports(20), flush=True); input()"


def test_a_port_another_process_holds_is_refused_until_it_exits():
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        theirs = [int(port) for port in holder.stdout.readline().split()]
        assert len(theirs) == 20
        assert not any(claim(port) for port in theirs)  # nothing listens there yet: only the lock says no
    finally:
        holder.communicate("\n", timeout=30)
    assert claim(theirs[0])  # the kernel dropped the holder's locks with it


def test_a_port_something_listens_on_is_refused():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert not claim(listening.getsockname()[1])


def test_ports_are_handed_out_once_and_cluster_ports_hold_their_bus_ports():
    ports = [free_port() for _ in range(50)]
    nodes = free_cluster_ports(3)
    assert len(set(ports)) == 50 and not set(nodes) & set(ports)
    assert not any(claim(port) for port in (*ports, *nodes, *(n + 10000 for n in nodes)))  # held already
