"""Import a library without the optional packages it loads only because they are installed.

Some libraries import optional packages at their own import, for uses aiub never makes: structlog
loads `rich` for console tracebacks (our log lines are JSON), httpx loads its command-line client
(`click`, `rich`, `pygments`), httpcore loads `trio` for trio applications (ours run on asyncio).
They are installed for other reasons (the dashboard, the browser tests), and every service process
paid for them at start: on the 2-core VM ~0.07 s of CPU for structlog's and ~0.09 s for httpx's
from bytecode, about twice that without (docs/benchmarks.md, "Start"). Hidden while the library
is imported, they make it take the fallback it has for their absence. A process that has loaded
them already (the dashboard loads `rich` through Textual) keeps them: nothing is hidden from it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hidden(*names: str) -> Iterator[None]:
    """While inside, `import name` raises ImportError for each of `names` not yet imported."""
    newly_hidden = [name for name in names if name not in sys.modules]
    for name in newly_hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not importable"
    try:
        yield
    finally:
        for name in newly_hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
