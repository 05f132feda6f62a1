"""What a running Textual app shows, as plain text: tests assert on the screen, not on widgets."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot

SIZE = (150, 45)


def screen_text(app: App[object]) -> str:
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)


def row(app: App[object], *words: str) -> bool:
    """Some line of the screen holds all these words, in this order."""
    for line in screen_text(app).splitlines():
        position = 0
        for word in words:
            position = line.find(word, position)
            if position < 0:
                break
            position += len(word)
        else:
            return True
    return False


async def until(pilot: Pilot[object], condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds it took for `condition` to hold (polled, never a fixed sleep); fails after `timeout_s`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}:\n{screen_text(pilot.app)}")
        await pilot.pause(0.02)
    return time.monotonic() - started
