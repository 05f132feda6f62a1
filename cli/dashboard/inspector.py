"""The request inspector's model: recent `RequestRecord`s, joined with the workers' `Outcome`s.

No I/O. The gateway publishes a record when a request ends; each worker publishes an outcome
per attempt, usually a little earlier. Both carry the bus request id, so a request opened in
the inspector shows every attempt with the gateway's view (status, error, latency) beside the
worker's (outcome, TTFT, tokens). Both stores are bounded: the oldest entries go first.

Filter syntax: space-separated terms, all must match. `model:PATTERN` and `provider:PATTERN`
match the model or any attempt's provider (`*` and `?` wildcards; a plain word matches as a
substring); any other word must appear in the request id, the client's id, the model or a
provider. Case-insensitive.
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict
from dataclasses import dataclass

from shared.messages import Outcome, RequestRecord


def display_id(record: RequestRecord) -> str:
    """The id the client got back in `x-request-id`, which is also the one in every log line."""
    return record.client_request_id or record.request_id


def providers_of(record: RequestRecord) -> tuple[str, ...]:
    return tuple(a.provider for a in record.attempts if a.provider)


@dataclass(frozen=True)
class Query:
    models: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    words: tuple[str, ...] = ()


def parse_query(text: str) -> Query:
    models, providers, words = [], [], []
    for term in text.lower().split():
        key, sep, value = term.partition(":")
        if sep and key == "model" and value:
            models.append(value)
        elif sep and key == "provider" and value:
            providers.append(value)
        else:
            words.append(term)
    return Query(tuple(models), tuple(providers), tuple(words))


def _like(value: str, pattern: str) -> bool:
    value = value.lower()
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(value, pattern)
    return pattern in value


def matches(record: RequestRecord, query: Query) -> bool:
    providers = providers_of(record)
    if not all(_like(record.model, m) for m in query.models):
        return False
    if not all(any(_like(p, pattern) for p in providers) for pattern in query.providers):
        return False
    haystack = " ".join((record.request_id, record.client_request_id or "", record.model, *providers)).lower()
    return all(word in haystack for word in query.words)


@dataclass
class Entry:
    record: RequestRecord
    outcomes: list[Outcome]

    def outcome_for(self, attempt: str) -> Outcome | None:
        return next((o for o in self.outcomes if o.attempt == attempt), None)


class RequestLog:
    def __init__(self, capacity: int = 1000) -> None:
        self._capacity = capacity
        self._records: OrderedDict[str, RequestRecord] = OrderedDict()
        self._outcomes: OrderedDict[str, list[Outcome]] = OrderedDict()
        self.received = 0

    def __len__(self) -> int:
        return len(self._records)

    def add_record(self, record: RequestRecord) -> None:
        self.received += 1
        self._records[record.request_id] = record
        self._records.move_to_end(record.request_id)
        while len(self._records) > self._capacity:
            self._records.popitem(last=False)

    def add_outcome(self, outcome: Outcome) -> None:
        self._outcomes.setdefault(outcome.request_id, []).append(outcome)
        self._outcomes.move_to_end(outcome.request_id)
        while len(self._outcomes) > 2 * self._capacity:
            self._outcomes.popitem(last=False)

    def newest(self, query: Query | None = None, limit: int | None = None) -> list[RequestRecord]:
        found = []
        for record in reversed(self._records.values()):
            if query is None or matches(record, query):
                found.append(record)
                if limit is not None and len(found) >= limit:
                    break
        return found

    def get(self, request_id: str) -> Entry | None:
        record = self._records.get(request_id)
        if record is None:
            return None
        return Entry(record, list(self._outcomes.get(request_id, ())))
