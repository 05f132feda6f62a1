"""A service's live config: the `current` key of the `aiub_config` KV bucket, watched.

Every service (gateway, router, health, workers) holds one. `start` waits for the bucket's current
revision, as HealthView waits for its snapshot, so a service started after a push runs the bucket's
revision from its first request; with an empty bucket, or none reachable, it runs its files. Each
later revision goes through `revisions.decide`: applied by one call to the service's `apply`, which
swaps one immutable `Config` reference (a request reads it once, when it starts, and finishes on
it), or refused, the running revision kept whole, and logged.

Build the service with `watch.config` and `bind` its apply with no await in between: then no
revision can arrive unseen in the gap. `rewatch` on reconnect, as HealthView's (a watcher's
consumer may be gone after a NATS restart, and nats-py notices only 10-20 s later).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from shared import bus, lifecycle, logs, subjects
from shared.config import Config, ConfigError, load_texts
from shared.config.revisions import CURRENT_KEY, Apply, Ignore, Keep, Revision, Role, decide, revision_decoder
from shared.config_store import current, open_bucket

log = logs.get("config_watch")


def revision_directory(number: int) -> Path:
    """What a revision's errors name as its directory: `aiub_config@7/providers.yaml: ...`."""
    return Path(f"{subjects.CONFIG_BUCKET}@{number}")


def load_revision(revision: Revision) -> Config | ConfigError:
    """The revision loaded here: `${VAR}` expanded with this process's environment (load_texts)."""
    try:
        return load_texts(revision.files, revision_directory(revision.number))
    except ConfigError as e:
        return e


class ConfigWatch:
    def __init__(self, role: Role, config: Config, served: Sequence[str] = (), number: int = 0) -> None:
        """`config`: what the service started with (its files, or revision `number` of the bucket)."""
        self.role = role
        self.config = config  # what the service runs now
        self.number = number  # its revision; 0: the files it was started with
        self.started = config  # what the settings read only at start came from
        self.served = tuple(served)
        self.refused: Keep | None = None  # the latest revision this service could not apply
        self.restart_needed: tuple[str, ...] = ()
        self.changed = asyncio.Event()  # set on every revision seen (applied or refused)
        self._apply: Callable[[Config], None] | None = None
        self._js: JetStreamContext | None = None
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._snapshot = asyncio.Event()

    async def start(self, js: JetStreamContext, snapshot_timeout_s: float = 5.0) -> Config:
        """Watch the bucket; returns the config to build the service with once the current
        revision arrived (or `snapshot_timeout_s` passed, or the bucket cannot be read)."""
        self._js = js
        try:
            self._watcher = await (await open_bucket(js)).watch(CURRENT_KEY)
        except Exception as e:  # no JetStream, no permission: run the files, and say so
            log.warning("config_bucket_unavailable", role=self.role, error=repr(e),
                        running="the files it was started with")
            return self.config
        self._task = asyncio.create_task(self._follow(self._watcher))
        try:
            async with asyncio.timeout(snapshot_timeout_s):
                await self._snapshot.wait()
        except TimeoutError:
            log.warning("config_snapshot_late", waited_s=snapshot_timeout_s)
        return self.config

    def bind(self, apply: Callable[[Config], None], started: Config | None = None) -> None:
        """From now on each applied revision is handed to `apply` (the service's swap). `started`:
        what the service's settings read only at start came from (default: what it runs now)."""
        self.started = started or self.config
        self._apply = apply

    async def rewatch(self) -> None:
        """A fresh watcher (it delivers `current` again: an unchanged revision is ignored)."""
        if self._js is None or self._task is None:
            return
        try:
            watcher = await (await open_bucket(self._js)).watch(CURRENT_KEY)
        except Exception as e:
            log.warning("config_rewatch_failed", error=repr(e))
            return
        old_task, old_watcher = self._task, self._watcher
        self._watcher, self._task = watcher, asyncio.create_task(self._follow(watcher))
        await bus.retire_follower(old_task, old_watcher)

    async def stop(self) -> None:
        await lifecycle.cancel_and_wait(self._task)

    async def wait_for(self, number: int, timeout_s: float) -> None:
        """Until revision `number` (or a later one) was applied or refused here."""
        async with asyncio.timeout(timeout_s):
            while self.number < number and (self.refused is None or self.refused.number < number):
                self.changed.clear()
                await self.changed.wait()

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:  # end of the initial value
                self._snapshot.set()
                continue
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                continue  # a deleted `current` changes nothing: the running revision stays
            try:
                revision = revision_decoder.decode(entry.value)
            except (msgspec.ValidationError, msgspec.DecodeError) as e:
                log.error("config_revision_unreadable", error=str(e))
                continue
            self.receive(revision)
            self._snapshot.set()

    def receive(self, revision: Revision) -> None:
        decision = decide(self.role, self.started, self.number, revision, load_revision(revision), self.served)
        match decision:
            case Ignore():
                return
            case Keep(number=number, reason=reason):
                self._refuse(decision, number, reason)
            case Apply(config=config, number=number, restart_needed=restart_needed):
                if self._apply is not None:
                    try:
                        self._apply(config)
                    except Exception as e:  # the swap itself failed: nothing was swapped
                        self._refuse(Keep(number, repr(e)), number, f"applying it failed: {e!r}")
                        return
                self.config, self.number, self.refused = config, number, None
                self.restart_needed = restart_needed
                log.info("config_applied", role=self.role, revision=number, source=revision.source)
                if restart_needed and self._apply is not None:  # before bind, the service is built from it
                    log.warning("config_restart_needed", role=self.role, revision=number,
                                settings=list(restart_needed),
                                running="their values from the start of this process until it is restarted")
        self.changed.set()

    def _refuse(self, decision: Keep, number: int, reason: str) -> None:
        self.refused = decision
        log.error("config_revision_refused", role=self.role, revision=number, running_revision=self.number,
                  reason=reason)
        self.changed.set()


async def initial(js: JetStreamContext, role: Role, config: Config, served: Sequence[str] = ()) -> tuple[Config, int]:
    """The bucket's current revision as this service starts on it, read once without watching (the
    gateway builds its listener and middleware before its event loop runs); else its files."""
    try:
        revision, _ = await current(await open_bucket(js, create=False))
    except Exception as e:
        log.info("config_bucket_not_read", role=role, error=repr(e), running="the files it was started with")
        return config, 0
    if revision is None:
        return config, 0
    decision = decide(role, config, 0, revision, load_revision(revision), served)
    if isinstance(decision, Apply):
        log.info("config_applied", role=role, revision=decision.number, source=revision.source, at="start")
        return decision.config, decision.number
    if isinstance(decision, Keep):
        log.error("config_revision_refused", role=role, revision=revision.number, running_revision=0,
                  reason=decision.reason, running="the files it was started with")
    return config, 0
