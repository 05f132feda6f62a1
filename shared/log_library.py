"""structlog without `rich` (shared/lean_imports.py): modules that log import it from here."""

from shared.lean_imports import hidden

with hidden("rich"):
    import structlog as structlog
