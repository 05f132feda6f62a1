"""JSON log lines: one per event, with `timestamp`, `level`, `event` and the service name."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson

from shared.log_library import structlog


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


_SPEC_LEVELS = {"warning": "WARN", "exception": "ERROR", "critical": "ERROR"}


def _spec_level(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The spec's level names: DEBUG, INFO, WARN, ERROR."""
    level = event.get("level", "")
    event["level"] = _SPEC_LEVELS.get(level, level.upper())
    return event


def configure(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging (uvicorn, nats) to one JSON stream."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _spec_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            lambda _, __, event: {"service": service, **event},
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(
        '{"timestamp":"%(asctime)s","level":"%(levelname)s","service":"' + service
        + '","logger":"%(name)s","event":%(message_json)s}'
    ))
    handler.addFilter(_json_message)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


def _json_message(record: logging.LogRecord) -> bool:
    record.message_json = orjson.dumps(record.getMessage()).decode()
    return True


def get(name: str | None = None) -> Any:
    return structlog.get_logger(name)
