"""Leases on sources: one lander or extract per source at a time, on any number of hosts.

One document per source in the collection `leases`: `{source, holder, token, expires_at,
acquired_at}`. Every time below is the MongoDB server's clock (`hello`'s `localTime`, read just
before each operation), so the hosts' clocks never decide who holds a source. (Server time is not
compared inside the query with `$$NOW`: secantus, the local MongoDB-compatible server, evaluates
`{$expr: {$lte: ["$expires_at", "$$NOW"]}}` as true for a future `expires_at`.)

- **acquire**: one find-one-and-update with upsert, matching the source's document only when its
  lease is free (`expires_at <= now`); it sets the holder, `expires_at = now + duration` and
  `token + 1`. A held lease matches nothing, so the upsert tries to insert a second document for
  the source and the unique index refuses it: that refusal is "busy". Two acquirers racing on a
  new source meet the same index (secantus may answer the loser with no document instead of the
  index's error: each attempt writes its own `claim`, so the answer is checked against it). The
  document is never deleted, so tokens only grow.
- **renew** (the heartbeat, every third of the duration, on a thread while the holder works):
  an update matching `{source, token}`. It fails once another holder took the lease (the token
  grew); the holder then knows it lost the source. A lease that expired while nobody took it is
  still this holder's (no one else can have committed since its token was issued).
- **fence**: a renew done right before a commit of landed files. It succeeds only while the
  token is the current one, and gives the holder a whole duration to finish the commit; see
  `confirm` for the cheap check before each rename, and docs/ingestion.md for what is left.
- **release**: `expires_at = now`, matched by token (a stale holder cannot free its successor's).
- **a holder that died**: its lease runs out after its duration. On the holder's own host (the
  holder is `<hostname>:<pid>`) a dead pid frees it at once, by an update matching its token, as
  the local file lock did; hostnames must therefore be unique among the hosts of a deployment.

Only plain update operators are used (`$set`, `$inc`, upsert, a unique index), which secantus and
MongoDB both implement.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from jstore.registry.mongo import Registry

log = logging.getLogger(__name__)

COLLECTION = "leases"
HEARTBEATS_PER_LEASE = 3
"""The heartbeat renews this many times per lease duration."""
CONFIRM_AFTER = 1 / HEARTBEATS_PER_LEASE
"""`confirm` asks the server again once this share of the duration passed since the last
successful renew (a process paused that long may have lost its lease)."""
WAIT_POLL_S = 0.5
"""How often a waiting acquirer tries again."""


class SourceBusy(RuntimeError):
    """Another lander or extract holds the source's lease."""


class LeaseLost(SourceBusy):
    """The lease expired and another holder took the source: this holder must not commit."""


def server_now(registry: Registry) -> datetime:
    """The MongoDB server's clock."""
    now: datetime = registry.client.admin.command("hello")["localTime"]
    return now if now.tzinfo else now.replace(tzinfo=UTC)


class Lease:
    """A held lease on one source: its token fences every commit of the holder. As a context
    manager: renewed by a heartbeat inside the block, released at its end."""

    def __init__(self, registry: Registry, source: str, token: int, duration_s: float, holder: str):
        self.registry = registry
        self.source = source
        self.token = token
        self.duration_s = duration_s
        self.holder = holder
        self.lost: str | None = None
        """Why the lease is lost, once a renew found it so."""
        self._renewed_at = time.monotonic()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @classmethod
    def of_token(cls, registry: Registry, source: str, token: int, duration_s: float) -> Lease:
        """The lease `token` of `source` held by another process of the same run (the extract's
        Spark job commits under its launcher's lease): fences its commits, no heartbeat."""
        return cls(registry, source, token, duration_s, holder=_holder())

    def renew(self) -> None:
        """Extend the lease by its duration from now; raises LeaseLost when another holder took
        it."""
        if self.lost:
            raise LeaseLost(self.lost)
        asked_at = time.monotonic()
        now = server_now(self.registry)
        renewed = self.registry.db[COLLECTION].update_one(
            {"source": self.source, "token": self.token},
            {"$set": {"expires_at": now + timedelta(seconds=self.duration_s)}},
        )
        if renewed.matched_count == 0:
            current = self.registry.db[COLLECTION].find_one({"source": self.source}) or {}
            self.lost = (
                f"source {self.source!r}: the lease of token {self.token} expired and is now "
                f"token {current.get('token')} of {current.get('holder')}: this run's batch is "
                "not committed (the holder that took over lands it)"
            )
            raise LeaseLost(self.lost)
        self._renewed_at = asked_at

    def fence(self) -> None:
        """The fencing check right before a commit: a renew, so the commit has a whole
        duration ahead of it; raises LeaseLost."""
        self.renew()

    def confirm(self) -> None:
        """The check before each rename of a commit: free while the last renew is recent (the
        lease then has most of its duration left), a renew otherwise (the process was paused or
        slow); raises LeaseLost."""
        if self.lost or time.monotonic() - self._renewed_at > self.duration_s * CONFIRM_AFTER:
            self.renew()

    def release(self) -> None:
        self.registry.db[COLLECTION].update_one(
            {"source": self.source, "token": self.token},
            {"$set": {"expires_at": server_now(self.registry)}},
        )

    def __enter__(self) -> Lease:
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"lease-{self.source}", daemon=True
        )
        self._heartbeat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        self.release()

    def _beat(self) -> None:
        while not self._stop.wait(self.duration_s / HEARTBEATS_PER_LEASE):
            try:
                self.renew()
            except LeaseLost:
                log.error("%s", self.lost)
                return
            except PyMongoError as e:  # the registry unreachable: the lease runs out by itself
                log.warning("lease of source %r not renewed: %s", self.source, e)


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire_lease(registry: Registry, source: str, duration_s: float, wait_s: float = 0.0) -> Lease:
    """Take the lease of `source`, waiting up to `wait_s` for its holder to finish; raises
    SourceBusy naming the holder after that. Use it as a context manager (heartbeat, release)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _try_acquire(registry, source, duration_s)
        except SourceBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(WAIT_POLL_S)


def _try_acquire(registry: Registry, source: str, duration_s: float) -> Lease:
    """Take the lease of `source` if it is free, or held by a process of this host that died
    (see the module docstring); raises SourceBusy naming the holder otherwise."""
    leases = registry.db[COLLECTION]
    leases.create_index([("source", ASCENDING)], unique=True)
    holder = _holder()
    now = server_now(registry)
    free = {"source": source, "expires_at": {"$lte": now}}
    doc = _claim(registry, free, holder, now, duration_s, upsert=True)
    if doc is None:
        current = leases.find_one({"source": source})
        if current is not None and _died_on_this_host(current.get("holder")):
            log.warning("source %r: taking over the lease of %s, which died", source, current)
            dead = {"source": source, "token": current["token"]}
            doc = _claim(registry, dead, holder, now, duration_s, upsert=False)
        if doc is None:
            raise SourceBusy(_busy(source, current))
    return Lease(registry, source, doc["token"], duration_s, holder)


def _claim(
    registry: Registry,
    match: dict[str, Any],
    holder: str,
    now: datetime,
    duration_s: float,
    upsert: bool,
) -> dict[str, Any] | None:
    """The lease document after making `holder` its holder where `match` finds it (inserting it
    for a new source), or None when `match` finds nothing (the lease is someone else's)."""
    leases, claim = registry.db[COLLECTION], uuid.uuid4().hex
    try:
        doc = leases.find_one_and_update(
            match,
            {
                "$set": {
                    "holder": holder,
                    "claim": claim,
                    "expires_at": now + timedelta(seconds=duration_s),
                    "acquired_at": now,
                },
                "$inc": {"token": 1},
            },
            upsert=upsert,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError:
        doc = None
    if doc is None:
        doc = leases.find_one({"source": match["source"]})
    return doc if doc is not None and doc.get("claim") == claim else None


def _died_on_this_host(holder: str | None) -> bool:
    """Whether `holder` (`<host>:<pid>`) names a process of this host that no longer runs (a
    killed lander frees its source at once, as the local lock did; pid reuse only delays it)."""
    host, _, pid = (holder or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _busy(source: str, doc: dict[str, Any] | None) -> str:
    doc = doc or {}
    expires: datetime | None = doc.get("expires_at")
    until = f" until {expires.isoformat()}" if expires else ""
    return (
        f"source {source!r}: another lander or extract holds its lease ({doc.get('holder')}, "
        f"token {doc.get('token')}){until}; try again when it is done"
    )
