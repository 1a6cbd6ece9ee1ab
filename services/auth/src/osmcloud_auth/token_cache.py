"""The verify cache's rules, free of I/O: which token answers may be served from memory.

An entry may be used only while this process holds a *lease*: it is registered with every
other auth replica (verify_peers.py) and so is told, before any logout answers, to drop what
that logout revoked. Three rules keep a revoked token from ever being served:

  * a lease lasts LEASE seconds from the moment its renewal was *sent*; a replica that could
    not reach us deletes our registration and waits out the lease before its logout answers,
    so by then we can no longer use anything we held (and our next renewal fails: we flush);
  * every invalidation, flush or (re)registration bumps `epoch`, and a database answer is
    stored only if no bump happened while it was read — a read that raced a logout is never
    cached (it answers its own request, which was concurrent with the logout, and that is all);
  * an entry is refreshed from the database once `last_seen_at` is due again (auth keeps that
    field to within a minute), and after `max_age` seconds whatever happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Verified:
    """What verify answers for a token: the identity headers and the device's last_seen_at."""
    user_id: str
    device_id: str
    headers: dict[str, str]
    last_seen_at: datetime


@dataclass(frozen=True)
class _Entry:
    verified: Verified
    stored_at: float


class TokenCache:
    def __init__(self, *, max_entries: int, lease_seconds: float, max_age_seconds: float,
                 last_seen_every: timedelta, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_entries, self.lease_seconds, self.max_age = max_entries, lease_seconds, max_age_seconds
        self.last_seen_every = last_seen_every
        self._monotonic = monotonic
        self._entries: dict[str, _Entry] = {}
        self.epoch = 0
        self._usable_until = 0.0  # monotonic; 0 = no lease: nothing is served or stored
        self.hits = self.misses = 0

    # ------------------------------------------------------------ the lease
    @property
    def usable(self) -> bool:
        return self.max_entries > 0 and self._monotonic() < self._usable_until

    def lease_renewed(self, sent_at: float) -> None:
        """A renewal sent at `sent_at` (monotonic) was accepted."""
        self._usable_until = max(self._usable_until, sent_at + self.lease_seconds)

    def registered(self, sent_at: float) -> None:
        """A fresh registration (sent at `sent_at`) was accepted: start from nothing."""
        self.flush()
        self._usable_until = sent_at + self.lease_seconds

    def lease_lost(self) -> None:
        """Our registration is gone (another replica could not reach us): serve nothing."""
        self._usable_until = 0.0
        self.flush()

    # ------------------------------------------------------------ entries
    def get(self, token_digest: str, now: datetime) -> Verified | None:
        entry = self._entries.get(token_digest)
        if entry is None or not self.usable:
            self.misses += 1
            return None
        if (self._monotonic() - entry.stored_at >= self.max_age
                or entry.verified.last_seen_at <= now - self.last_seen_every):
            del self._entries[token_digest]  # the database read refreshes it (and last_seen_at)
            self.misses += 1
            return None
        self.hits += 1
        return entry.verified

    def ticket(self) -> int:
        """Take before reading the database; give to `put` with the answer."""
        return self.epoch

    def put(self, token_digest: str, verified: Verified, ticket: int) -> bool:
        if ticket != self.epoch or not self.usable:
            return False
        if token_digest not in self._entries and len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest stored
        self._entries[token_digest] = _Entry(verified, self._monotonic())
        return True

    def drop(self, *, device_ids: Sequence[str] = (), user_id: str | None = None) -> int:
        """Forget the devices' (or the whole user's) tokens; in-flight reads will not be stored."""
        self.epoch += 1
        devices = set(device_ids)
        gone = [digest for digest, entry in self._entries.items()
                if entry.verified.device_id in devices or entry.verified.user_id == user_id]
        for digest in gone:
            del self._entries[digest]
        return len(gone)

    def flush(self) -> None:
        self.epoch += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
