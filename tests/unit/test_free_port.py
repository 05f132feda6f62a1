"""`free_port` never hands out a port twice in one process: the kernel may return the same free
port on consecutive asks, and `aiub up` gives a dozen to its children before any of them binds."""

from __future__ import annotations

import socket

from shared.embedded_nats import free_port


def test_ports_handed_out_are_all_different_and_free() -> None:
    ports = [free_port() for _ in range(3000)]  # the kernel alone repeats itself well before 3,000
    assert len(set(ports)) == len(ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))  # and the last one is indeed free
