"""`aiub dashboard 2>file` draws on the terminal: Textual's own driver draws on stderr, which
left the screen blank and filled the file with escape codes. The dashboard runs here in a real
pseudo-terminal (its controlling terminal) with stderr sent to a file."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path

from cli.dashboard.terminal import TtyDriver, driver_for

ROOT = Path(__file__).resolve().parents[2]
APP = """
import sys
from cli.dashboard.app import DashboardApp
from cli.dashboard.feed import Model
from cli.dashboard.terminal import driver_for
print("before the app", file=sys.stderr)
DashboardApp(Model(), refresh_s=0.2, driver_class=driver_for()).run()
print("after the app", file=sys.stderr)
"""


def test_the_tty_driver_is_chosen_only_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    leader, follower = os.openpty()
    try:
        with open(follower, "w", closefd=False) as terminal:
            assert driver_for(terminal, tty=os.ttyname(follower)) is None  # Textual's own driver is right
        with open(tmp_path / "err.log", "w") as redirected:
            assert driver_for(redirected, tty=os.ttyname(follower)) is TtyDriver
            assert driver_for(redirected, tty=str(tmp_path / "no-tty")) is None  # no terminal: nothing better
    finally:
        os.close(leader)
        os.close(follower)


def test_with_stderr_redirected_the_dashboard_draws_on_the_terminal(tmp_path: Path) -> None:
    errors = tmp_path / "err.log"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal; stderr goes to a file
        os.dup2(os.open(errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-c", APP])
    drawn = b""
    try:
        deadline = time.monotonic() + 30
        while b"Providers" not in re.sub(rb"\x1b\[[0-9;?<>=$]*[A-Za-z~]", b"", drawn):
            assert time.monotonic() < deadline, f"nothing drawn on the terminal; stderr got {errors.read_text()!r}"
            if select.select([fd], [], [], 0.1)[0]:
                drawn += os.read(fd, 65536)
        os.write(fd, b"q")
        deadline = time.monotonic() + 15
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            assert time.monotonic() < deadline, "the dashboard did not quit on q"
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    os.read(fd, 65536)
                except OSError:
                    pass
        pid = 0
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    assert errors.read_text() == "before the app\nafter the app\n"  # what was written to stderr, and only that
