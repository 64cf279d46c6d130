"""server/principal_cache.py alone: what it remembers, for how long, and
what makes it forget (the broker's part is in tests/test_broker.py, the
whole path across two real workers in tests/test_live_e2e.py)."""
from __future__ import annotations

from server.auth import Principal
from server.principal_cache import PrincipalCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def principal(user_id: int, device_id: int = 1) -> Principal:
    return Principal(user_id, f"user{user_id}", "token", device_id, "laptop")


def cache(live=lambda: True, **kwargs) -> tuple[PrincipalCache, Clock]:
    clock = Clock()
    return PrincipalCache(live, clock=clock, **kwargs), clock


def test_a_stored_principal_is_found_until_its_user_is_forgotten():
    principals, _ = cache()
    alice, bob = principal(1), principal(2)
    for key, who in ((b"t-alice", alice), (b"s-alice", principal(1, 2)), (b"t-bob", bob)):
        _, epoch = principals.lookup(key)
        principals.store(key, who, epoch)
    assert principals.lookup(b"t-alice")[0] is alice
    principals.forget_user(1)
    assert principals.lookup(b"t-alice")[0] is None
    assert principals.lookup(b"s-alice")[0] is None
    assert principals.lookup(b"t-bob")[0] is bob


def test_a_lookup_that_raced_with_an_account_change_is_not_stored():
    # Read from the database before a revoke committed, stored after the
    # revoke was heard: storing it would bring the revoked credential back.
    principals, _ = cache()
    _, epoch = principals.lookup(b"t-alice")
    principals.forget_user(1)  # the revoke event arrives while the read is under way
    principals.store(b"t-alice", principal(1), epoch)
    assert principals.lookup(b"t-alice")[0] is None
    _, epoch = principals.lookup(b"t-alice")
    principals.clear()  # the pub/sub connection came back: changes may have been missed
    principals.store(b"t-alice", principal(1), epoch)
    assert len(principals) == 0


def test_nothing_is_used_or_stored_while_account_changes_cannot_be_heard():
    live = [True]
    principals, _ = cache(lambda: live[0])
    _, epoch = principals.lookup(b"t-alice")
    principals.store(b"t-alice", principal(1), epoch)
    live[0] = False
    assert principals.lookup(b"t-alice") == (None, None)
    principals.store(b"t-bob", principal(2), None)
    live[0] = True
    assert principals.lookup(b"t-bob")[0] is None


def test_an_entry_is_trusted_for_max_age_seconds_only():
    principals, clock = cache(max_age=10.0)
    _, epoch = principals.lookup(b"t-alice")
    principals.store(b"t-alice", principal(1), epoch)
    clock.now += 9.9
    assert principals.lookup(b"t-alice")[0] is not None
    clock.now += 0.2
    assert principals.lookup(b"t-alice")[0] is None
    assert len(principals) == 0


def test_the_oldest_entry_goes_when_full():
    principals, _ = cache(max_entries=2)
    for user_id in (1, 2, 3):
        _, epoch = principals.lookup(b"k%d" % user_id)
        principals.store(b"k%d" % user_id, principal(user_id), epoch)
    assert len(principals) == 2
    assert principals.lookup(b"k1")[0] is None
    assert principals.lookup(b"k3")[0].user_id == 3
