"""Value types for command-line options that argparse's `int` and `float` let through wrong.

A port of 99999 is not refused by the socket layer: it is taken modulo 65536, so a service
would listen somewhere nobody asked for while announcing the number it was given. A refresh of
0 s turns a screen into a busy loop. Both are caught here, where the user can still be told.
"""

from __future__ import annotations

import argparse

HIGHEST_PORT = 65535


def port(text: str) -> int:
    """A TCP port to listen on or connect to: 1–65535."""
    return _port(text, lowest=1)


def port_or_zero(text: str) -> int:
    """A port to listen on, where 0 asks the system for a free one."""
    return _port(text, lowest=0)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _port(text: str, lowest: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not lowest <= value <= HIGHEST_PORT:
        raise argparse.ArgumentTypeError(f"a port is {lowest}–{HIGHEST_PORT}, not {value}")
    return value
