"""Every NATS subject and queue group, defined once.

Builders validate each token: a token with `.`, `*`, `>`, whitespace or CR/LF would change
which subscribers a message reaches, so input that could come from a client never shapes a
subject. Provider keys come from config and are validated at load time with the same rule.
"""

from __future__ import annotations

import re

PREFIX = "aiub"
REQUESTS = f"{PREFIX}.requests"
ROUTER_QUEUE = "router"
REQUEST_EVENTS = f"{PREFIX}.events.request"
OUTCOME_ALL = f"{PREFIX}.events.outcome.*"
LOAD_ALL = f"{PREFIX}.load.*"
HEALTH_BUCKET = "aiub_health"
HEALTH_HEARTBEAT_KEY = "_heartbeat"
HEALTH_LEADER_KEY = "_leader"
RESPONSES_BUCKET = "aiub_responses"  # the Responses API's stored responses (gateway only)
CONFIG_BUCKET = "aiub_config"  # config revisions: `current` and rev.<n> (shared/config/revisions.py)

_BAD_TOKEN = re.compile(r"[.*>\s]")


class InvalidSubjectToken(ValueError):
    pass


def token(value: str) -> str:
    """Return `value` if it is safe as one subject token, else raise."""
    if not value or _BAD_TOKEN.search(value) or not value.isprintable():
        raise InvalidSubjectToken(f"not a valid subject token: {value!r}")
    return value


def work(provider: str) -> str:
    return f"{PREFIX}.work.{token(provider)}"


def worker_queue(provider: str) -> str:
    return f"worker.{token(provider)}"


def outcome(provider: str) -> str:
    return f"{PREFIX}.events.outcome.{token(provider)}"


def load(provider: str) -> str:
    return f"{PREFIX}.load.{token(provider)}"


def models(provider: str) -> str:
    """Request/reply: a worker of `provider` (queue group `worker_queue`) answers `ModelList`."""
    return f"{PREFIX}.models.{token(provider)}"


def control(worker_id: str) -> str:
    return f"{PREFIX}.control.{token(worker_id)}"


def inbox_prefix(user: str | None) -> str:
    """The connection's inbox prefix: `_INBOX.<user>` for a NATS user, so the server can let each
    user read only its own inboxes (deploy/nats/auth.conf); plain `_INBOX` without one."""
    return f"_INBOX.{token(user)}" if user else "_INBOX"


def inbox(process_inbox: str, attempt: str) -> str:
    """An attempt's inbox under the process's own (`nc.new_inbox()`: `<inbox prefix>.<nuid>`)."""
    return f"{process_inbox}.{token(attempt)}"


def last_token(subject: str) -> str:
    return subject.rpartition(".")[2]
