"""`aiub dashboard`: the Textual dashboard over a running stack (see docs/observability.md)."""
