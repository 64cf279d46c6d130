"""Who a credential belongs to, remembered per worker, so an authenticated
request does not read the database each time.

An entry is dropped the moment the account changes anywhere: every logout,
revoke, rename, password change and user deletion ends in
`Broker.publish_account_change`, which forgets the user here at once and
tells every other worker over a channel each of them listens to
(server/broker.py). The cache is only consulted while that channel is
live; when the pub/sub connection drops, lookups go to the database, and
once it is back the cache starts empty (changes in between were not heard).
Without Redis there is no such channel (the CLI, a separate process, could
not reach this one), so there is no cache.

Two more bounds: an entry is trusted for MAX_AGE seconds, after which the
database is read again (it also keeps last-seen times moving); and a lookup
that raced with a change -- read from the database before the change,
stored after it was announced -- is not stored (the epoch).
"""
from __future__ import annotations

import time
from typing import Callable

MAX_AGE = 10.0  # seconds an entry is trusted without reading the database again
MAX_ENTRIES = 10_000  # credentials remembered per worker; the oldest go first


class PrincipalCache:
    def __init__(self, live: Callable[[], bool], *, max_age: float = MAX_AGE, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._live = live  # whether account changes reach this worker now
        self._max_age = max_age
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[bytes, tuple[object, float]] = {}
        self._epoch = 0

    def lookup(self, key: bytes):
        """(principal or None, epoch): the epoch goes back to store()."""
        if not self._live():
            return None, None
        entry = self._entries.get(key)
        if entry is not None:
            if self._clock() - entry[1] < self._max_age:
                return entry[0], self._epoch
            del self._entries[key]
        return None, self._epoch

    def store(self, key: bytes, principal, epoch: int | None) -> None:
        """Remember a principal read from the database, unless an account
        change was heard since its lookup began (or the channel is down)."""
        if epoch is None or epoch != self._epoch or not self._live():
            return
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (principal, self._clock())

    def forget_user(self, user_id: int) -> None:
        self._epoch += 1
        for key in [key for key, (principal, _) in self._entries.items() if principal.user_id == user_id]:
            del self._entries[key]

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
