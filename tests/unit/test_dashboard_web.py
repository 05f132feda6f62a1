"""`aiub dashboard --web`'s gate (cli/dashboard/web.py): the master key or its session cookie, and
the websocket only from the page's own origin."""

from __future__ import annotations

import shlex

from cli.dashboard.web import Gate, command, is_loopback, session_token

KEY = "sk-master-0123456789abcdef"


def ask(gate: Gate, path: str = "/", token: str | None = None, cookie: str | None = None, bearer: str | None = None,
        origin: str | None = None) -> str:
    return gate.decide(path=path, token=token, cookie=cookie, bearer=bearer, origin=origin, host="h:8765")


def test_with_a_master_key_every_path_needs_the_key_or_its_session() -> None:
    gate = Gate(KEY)
    assert ask(gate) == "login"
    assert ask(gate, "/ws") == ask(gate, "/static/js/textual.js") == "refuse"
    assert ask(gate, token=KEY) == "start_session"
    assert ask(gate, token="sk-wrong") == ask(gate, token="") == "refuse"
    assert ask(gate, "/ws", cookie=session_token(KEY)) == "allow"
    assert ask(gate, "/ws", cookie=KEY) == "refuse"  # the cookie holds an HMAC of the key, never the key
    assert ask(gate, "/ws", cookie=session_token("sk-other-0123456789")) == "refuse"
    assert ask(gate, bearer=KEY) == "allow" and ask(gate, bearer="nope") == "login"


def test_the_websocket_serves_its_own_page_only() -> None:
    for gate in (Gate(KEY), Gate(None)):
        assert ask(gate, "/ws", cookie=session_token(KEY), origin="http://evil.example") == "foreign_origin"
    assert ask(Gate(KEY), "/ws", cookie=session_token(KEY), origin="http://h:8765") == "allow"
    assert ask(Gate(None), "/ws", origin="http://h:8765") == "allow"


def test_without_a_key_only_loopback_may_be_served() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("lab-hub")


def test_each_tab_runs_the_terminal_dashboard_on_the_stack_already_found() -> None:
    argv = shlex.split(command("nats://h:4222", ["http://h:4000/metrics"], "/s", "/c", 1.0, 300.0))
    assert argv[1:] == ["-m", "cli.main", "dashboard", "--state-dir", "/s", "--nats", "nats://h:4222", "--config",
                        "/c", "--refresh", "1.0", "--window", "300.0", "--metrics", "http://h:4000/metrics"]
    assert "--web" not in argv
