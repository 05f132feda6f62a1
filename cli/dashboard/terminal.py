"""Drawing on the terminal even when stderr is redirected.

Textual's Linux driver draws on stderr (stdout stays free for an app's output), so
`aiub dashboard 2>errors.log` drew into the file and left the terminal blank. When stderr is not
a terminal but the process has a controlling one, the dashboard draws on `/dev/tty`, reads its
keys and takes its size from there, and stderr keeps only what is written to it.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from textual.drivers.linux_driver import LinuxDriver

TTY = "/dev/tty"


class TtyDriver(LinuxDriver):
    """Textual's Linux driver on the controlling terminal instead of stderr and stdin."""

    def __init__(self, app: Any, *, debug: bool = False, mouse: bool = True,
                 size: tuple[int, int] | None = None) -> None:
        super().__init__(app, debug=debug, mouse=mouse, size=size)
        # Both closed in close(). Two handles: a text file on a terminal cannot be opened "r+".
        self._tty_out: IO[str] = open(TTY, "w", encoding="utf-8")
        self._tty_in = os.open(TTY, os.O_RDWR)  # keys, and the termios modes set on it
        self._file = self._tty_out
        self.fileno = self._tty_in
        self.input_tty = True

    def _get_terminal_size(self) -> tuple[int, int]:
        try:
            size = os.get_terminal_size(self._tty_in)
        except OSError:
            return super()._get_terminal_size()
        return size.columns or 80, size.lines or 25

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._tty_out.close()
            os.close(self._tty_in)


def driver_for(stderr: IO[str] | None = None, tty: str = TTY) -> type[LinuxDriver] | None:
    """`TtyDriver` when stderr is not a terminal and `tty` opens; None: Textual's own choice."""
    stderr = stderr if stderr is not None else sys.__stderr__
    if sys.platform == "win32" or (stderr is not None and stderr.isatty()):
        return None
    try:
        os.close(os.open(tty, os.O_RDWR))
    except OSError:
        return None  # no controlling terminal (a service, a pipe): nothing better to draw on
    return TtyDriver
