"""The dashboard's second-level screens: one request's attempts, and the config editor."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane, TextArea

from cli.dashboard import config_edit, view
from cli.dashboard.inspector import Entry
from shared.config import ConfigError


class RequestScreen(ModalScreen[None]):
    """One request: the gateway's record and every attempt, with the serving worker's outcome."""

    DEFAULT_CSS = """
    RequestScreen { align: center middle; }
    #request { width: 90%; height: auto; max-height: 80%; border: thick $accent; background: $surface; padding: 1; }
    #attempts { height: auto; }
    """
    BINDINGS = [("escape", "dismiss", "Back"), ("q", "dismiss", "Back")]

    def __init__(self, entry: Entry) -> None:
        super().__init__()
        self.entry = entry

    def compose(self) -> ComposeResult:
        with Vertical(id="request"):
            yield Static(view.request_summary(self.entry), id="summary", markup=False)  # a client's words
            yield DataTable(id="attempts", cursor_type="none")
            yield Static("Esc: back", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one("#attempts", DataTable)
        table.add_columns("#", "provider", "worker", "status", "outcome", "error", "latency", "TTFT", "tokens in/out")
        for key, cells in view.attempt_rows(self.entry):
            table.add_row(*cells, key=key)
        if not self.entry.record.attempts:
            table.add_row("–", "cache" if view.cache_state(self.entry.record) == "hit" else "–", *["–"] * 7)


_PANES = {"providers.yaml": "providers", "model-mappings.yaml": "mappings", "aiub.yaml": "runtime"}


class ConfigScreen(Screen[None]):
    """Edit the three config files; Ctrl+S validates all of them together and saves only if valid."""

    DEFAULT_CSS = """
    ConfigScreen TabbedContent, ConfigScreen TabPane, ConfigScreen TextArea { height: 1fr; }
    #config-status { height: auto; max-height: 12; padding: 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+s", "save", "Validate and save", priority=True),
        Binding("escape", "back", "Back", priority=True),
    ]

    def __init__(self, directory: Path, nats_url: str | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        """`nats_url`: save by publishing a revision (cli/config_live.py) as well as writing the files."""
        super().__init__()
        self.directory = directory
        self.nats_url = nats_url
        self.environ = environ if environ is not None else {}
        self.original = config_edit.read_files(directory)

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent():
            for name, pane in _PANES.items():
                with TabPane(name, id=pane):
                    yield TextArea(self.original[name], id=f"edit-{pane}", show_line_numbers=True)
        yield Static(f"config {self.directory}: Ctrl+S validates and saves, Esc goes back", id="config-status")
        yield Footer()

    def edited(self) -> dict[str, str]:
        return {name: self.query_one(f"#edit-{pane}", TextArea).text for name, pane in _PANES.items()}

    async def action_save(self) -> None:
        status = self.query_one("#config-status", Static)
        if self.nats_url is not None:
            try:
                saved, said = await config_edit.publish(self.nats_url, self.directory, self.edited(), self.environ)
            except ConfigError as e:
                status.update(Text(f"NOT saved: the config is invalid\n{e}", "bold red"))
                return
            except OSError as e:
                status.update(Text(f"NOT saved: {e}", "bold red"))
                return
            status.update(Text(said, "green" if saved else "bold red"))
            return
        try:
            changed = config_edit.save(self.directory, self.edited())
        except ConfigError as e:
            status.update(Text(f"NOT saved: the config is invalid\n{e}", "bold red"))
            return
        except OSError as e:
            status.update(Text(f"NOT saved: {e}", "bold red"))
            return
        if not changed:
            status.update(Text("valid; nothing changed", "green"))
            return
        status.update(Text(f"valid; saved {', '.join(changed)} — no bus: `aiub config push` applies it live",
                           "green"))

    def action_back(self) -> None:
        self.app.pop_screen()
