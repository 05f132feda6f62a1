"""What every config document shares: the error that names where, and the strict model base."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(Exception):
    """A config file is missing, unreadable or invalid; the message says where and why."""


class Strict(BaseModel):
    """Unknown keys are refused (a key in the wrong place silently ignored is how gateways end up
    misrouting); loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
