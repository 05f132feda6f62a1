"""httpx without its command-line client or httpcore's trio support (shared/lean_imports.py):
modules on a service's start path import it from here."""

from shared.lean_imports import hidden

with hidden("click", "rich", "pygments", "trio"):
    import httpx as httpx
