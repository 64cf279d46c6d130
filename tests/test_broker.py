"""Both brokers, against a real private redis-server (tests/redis_server.py); no mocks.

Every wait has a timeout so a broken broker fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest

import server.broker
from server.broker import RESYNC, MemoryBroker, RedisBroker, create_broker
from tests.redis_server import redis_server  # noqa: F401  (fixture)

PREFIX = "cloudbuffer:user:"


async def next_item(subscription, timeout: float = 3.0):
    return await asyncio.wait_for(subscription.get(), timeout)


async def eventually(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def user_channels(server) -> set[str]:
    with server.client() as client:
        return set(client.pubsub_channels(PREFIX + "*"))


def channel(user_id: int) -> str:
    return PREFIX + str(user_id)


def other_tasks() -> set[asyncio.Task]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


@pytest.fixture(params=["memory", "redis"])
async def broker(request):
    if request.param == "memory":
        broker = MemoryBroker()
    else:
        broker = RedisBroker(request.getfixturevalue("redis_server").url)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@pytest.fixture
async def redis_broker(redis_server):  # noqa: F811
    broker = RedisBroker(redis_server.url)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


# --- both backends ---------------------------------------------------------------


async def test_names_and_factory(redis_server):  # noqa: F811
    assert create_broker(None).name == "memory"
    assert isinstance(create_broker(""), MemoryBroker)
    redis_broker = create_broker(redis_server.url)
    assert isinstance(redis_broker, RedisBroker) and redis_broker.name == "redis"
    await redis_broker.stop()  # never started: stop must still be harmless


async def test_publish_reaches_subscriber_in_order(broker):
    assert broker.status == "ok"
    messages = [f'{{"seq": {i}, "text": "é ✓ {i}"}}' for i in range(50)]
    async with broker.subscribe(7) as subscription:
        for message in messages:
            await broker.publish(7, message)
        received = [await next_item(subscription) for _ in messages]
    assert received == messages  # published as-is, in order


async def test_large_message_passes_unchanged(broker):
    message = "x" * (64 * 1024) + "ü"
    async with broker.subscribe(1) as subscription:
        await broker.publish(1, message)
        assert await next_item(subscription) == message


async def test_other_user_receives_nothing(broker):
    async with broker.subscribe(1) as one, broker.subscribe(2) as two:
        await broker.publish(2, "for two")
        await broker.publish(1, "marker")
        # Events are fanned out in publish order, so by the time the marker
        # arrives, "for two" has been dispatched -- and it did not come here.
        assert await next_item(one) == "marker"
        assert await next_item(two) == "for two"


async def test_publish_without_subscribers_is_fine(broker):
    await broker.publish(99, "nobody listens")
    async with broker.subscribe(99) as subscription:
        await broker.publish(99, "now")
        assert await next_item(subscription) == "now"  # the earlier one is not replayed


async def test_two_subscriptions_of_one_user_both_receive(broker):
    async with broker.subscribe(3) as first, broker.subscribe(3) as second:
        await broker.publish(3, "a")
        await broker.publish(3, "b")
        assert [await next_item(first), await next_item(first)] == ["a", "b"]
        assert [await next_item(second), await next_item(second)] == ["a", "b"]
        async with broker.subscribe(3):  # closing another one leaves these working
            pass
        await broker.publish(3, "c")
        assert await next_item(first) == "c" and await next_item(second) == "c"
    async with broker.subscribe(3) as again:
        await broker.publish(3, "d")
        assert await next_item(again) == "d"


async def test_async_iteration(broker):
    async with broker.subscribe(4) as subscription:
        for text in ("one", "two"):
            await broker.publish(4, text)
        received = []
        async for message in subscription:
            received.append(message)
            if len(received) == 2:
                break
    assert received == ["one", "two"]


async def test_slow_consumer_gets_a_single_resync(broker):
    async with broker.subscribe(5) as slow, broker.subscribe(5) as fast:
        fast_received = []
        for i in range(300):
            await broker.publish(5, str(i))
            fast_received.append(await next_item(fast))  # the fast one keeps up
        await broker.publish(5, "end")
        assert fast_received == [str(i) for i in range(300)]
        assert await next_item(fast) == "end"
        # The slow one's queue (256) overflowed at message 256: everything queued was
        # dropped for one RESYNC, and what came after follows it in order.
        items = [await next_item(slow)]
        while items[-1] != "end":
            items.append(await next_item(slow))
        assert items[0] is RESYNC
        assert items[1:] == [str(i) for i in range(257, 300)] + ["end"]


async def test_closed_subscriptions_are_forgotten(broker):
    async with broker.subscribe(6):
        async with broker.subscribe(6):
            pass
        assert set(broker._local) == {6}
    assert broker._local == {}
    await broker.publish(6, "into the void")


# --- Redis: channel bookkeeping ---------------------------------------------------


async def test_channel_subscribed_by_first_and_unsubscribed_by_last(redis_broker, redis_server):  # noqa: F811
    assert user_channels(redis_server) == set()
    async with redis_broker.subscribe(11):
        # Active when `subscribe` returns: Redis has acknowledged the SUBSCRIBE.
        assert user_channels(redis_server) == {channel(11)}
        async with redis_broker.subscribe(11):
            assert user_channels(redis_server) == {channel(11)}
        assert user_channels(redis_server) == {channel(11)}  # one local subscriber left
    await eventually(lambda: user_channels(redis_server) == set(), what="UNSUBSCRIBE")


async def test_subscription_is_active_when_subscribe_returns(redis_server):  # noqa: F811
    # A publish from another process right after `subscribe` returns must arrive:
    # that is what lets a socket subscribe first and read the snapshot second.
    listener, publisher = RedisBroker(redis_server.url), RedisBroker(redis_server.url)
    await listener.start()
    await publisher.start()
    try:
        for user_id in range(100, 130):
            async with listener.subscribe(user_id) as subscription:
                await publisher.publish(user_id, f"hello {user_id}")
                assert await next_item(subscription) == f"hello {user_id}"
    finally:
        await listener.stop()
        await publisher.stop()


async def test_concurrent_open_and_close_leave_the_right_channels(redis_broker, redis_server):  # noqa: F811
    rng = random.Random(1234)
    held = asyncio.Event()

    async def churn(user_id: int) -> None:
        for _ in range(15):
            async with redis_broker.subscribe(user_id):
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)

    async def hold(user_id: int, ready: list) -> None:
        async with redis_broker.subscribe(user_id) as subscription:
            ready.append(subscription)
            await held.wait()

    ready: list = []
    holders = [asyncio.create_task(hold(user_id, ready)) for user_id in (21, 23, 23)]
    await asyncio.wait_for(asyncio.gather(*(churn(user_id) for user_id in (21, 22, 23, 24) * 5)), 10)
    await eventually(lambda: len(ready) == 3, what="holders")
    await eventually(lambda: user_channels(redis_server) == {channel(21), channel(23)},
                     what="exactly the held users' channels")
    await asyncio.sleep(0.1)  # and it stays that way
    assert user_channels(redis_server) == {channel(21), channel(23)}
    for user_id in (21, 22, 23, 24):
        await redis_broker.publish(user_id, f"to {user_id}")
    assert sorted([await next_item(s) for s in ready]) == ["to 21", "to 23", "to 23"]
    held.set()
    await asyncio.wait_for(asyncio.gather(*holders), 5)
    await eventually(lambda: user_channels(redis_server) == set(), what="all unsubscribed")


async def test_cancelled_subscribe_leaves_no_channel(redis_broker, redis_server):  # noqa: F811
    async def subscriber(user_id: int) -> None:
        async with redis_broker.subscribe(user_id):
            await asyncio.sleep(10)

    for steps in range(6):  # cancel at different points of subscribing
        task = asyncio.create_task(subscriber(40 + steps))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await eventually(lambda: user_channels(redis_server) == set(), what="no dangling channels")
    async with redis_broker.subscribe(42) as subscription:  # and the broker still works
        await redis_broker.publish(42, "ok")
        assert await next_item(subscription) == "ok"


async def test_two_workers_share_events(redis_server):  # noqa: F811
    worker_a, worker_b = RedisBroker(redis_server.url), RedisBroker(redis_server.url)
    await worker_a.start()
    await worker_b.start()
    try:
        async with worker_a.subscribe(8) as on_a, worker_b.subscribe(8) as on_b:
            await worker_a.publish(8, "from a")
            await worker_b.publish(8, "from b")
            assert [await next_item(on_a), await next_item(on_a)] == ["from a", "from b"]
            assert [await next_item(on_b), await next_item(on_b)] == ["from a", "from b"]
    finally:
        await worker_a.stop()
        await worker_b.stop()


# --- Redis: faults ----------------------------------------------------------------


async def test_client_kill_pubsub_resyncs_every_subscription(redis_broker, redis_server):  # noqa: F811
    async with redis_broker.subscribe(1) as a, redis_broker.subscribe(1) as b, \
            redis_broker.subscribe(2) as c:
        assert redis_server.client_kill_pubsub() == 1  # one pub/sub connection per process
        for subscription in (a, b, c):
            assert await next_item(subscription) is RESYNC
        assert redis_broker.status == "ok"
        assert user_channels(redis_server) == {channel(1), channel(2)}
        await redis_broker.publish(1, "after")
        await redis_broker.publish(2, "after 2")
        assert [await next_item(a), await next_item(b), await next_item(c)] == ["after", "after", "after 2"]


async def test_reconnect_made_by_redis_py_itself_still_resyncs(redis_broker):
    # The safety net: should redis-py ever re-establish the pub/sub connection on
    # its own (as its default retry policy does, re-subscribing silently), the
    # events lost in between must still lead to a RESYNC. Simulate exactly that.
    async with redis_broker.subscribe(1) as subscription:
        connection = redis_broker._session.pubsub.connection
        await connection.disconnect()
        await connection.connect()
        assert await next_item(subscription) is RESYNC
        await redis_broker.publish(1, "after")
        assert await next_item(subscription) == "after"


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_redis_down_then_back(redis_broker, redis_server, caplog, how):  # noqa: F811
    caplog.set_level(logging.INFO, logger="server.broker")
    async with redis_broker.subscribe(1) as one, redis_broker.subscribe(2) as two:
        getattr(redis_server, how)()
        await eventually(lambda: redis_broker.status == "degraded", timeout=3, what="degraded")
        started = time.monotonic()
        await redis_broker.publish(1, "secret clipboard text")  # must not raise
        assert time.monotonic() - started < 1
        assert redis_broker.status == "degraded"
        # A socket opening while Redis is down is not kept waiting: it gets its RESYNC later.
        async with redis_broker.subscribe(3) as three:
            redis_server.start()  # same port
            await eventually(lambda: redis_broker.status == "ok", timeout=5, what="ok again")
            for subscription in (one, two, three):
                assert await next_item(subscription) is RESYNC
            assert user_channels(redis_server) == {channel(1), channel(2), channel(3)}
            await redis_broker.publish(1, "one")
            await redis_broker.publish(3, "three")
            assert await next_item(one) == "one"
            assert await next_item(three) == "three"
    assert "Redis publish failed" in caplog.text
    assert "secret clipboard text" not in caplog.text


async def test_hung_server_is_noticed_by_the_ping_watchdog(redis_server, monkeypatch):  # noqa: F811
    # A frozen server keeps its sockets open, so only the listener's PING notices.
    monkeypatch.setattr(server.broker, "PING_INTERVAL", 0.2)
    monkeypatch.setattr(server.broker, "PING_TIMEOUT", 0.3)
    broker = RedisBroker(redis_server.url)
    await broker.start()
    try:
        async with broker.subscribe(1) as subscription:
            await asyncio.sleep(1.0)  # idle: answered PINGs keep the connection
            await broker.publish(1, "still here")
            assert await next_item(subscription) == "still here"  # and no RESYNC before it
            redis_server.pause()
            await eventually(lambda: broker.status == "degraded", timeout=2, what="degraded")
            redis_server.resume()
            assert await next_item(subscription, timeout=5) is RESYNC
            assert broker.status == "ok"
            await broker.publish(1, "back")
            assert await next_item(subscription) == "back"
    finally:
        redis_server.resume()
        await broker.stop()


async def test_start_with_redis_down(redis_server):  # noqa: F811
    redis_server.stop()
    broker = RedisBroker(redis_server.url)
    started = time.monotonic()
    await broker.start()
    try:
        assert time.monotonic() - started < 3
        assert broker.status == "degraded"
        async with broker.subscribe(1) as subscription:
            redis_server.start()
            assert await next_item(subscription, timeout=5) is RESYNC
            assert broker.status == "ok"
            await broker.publish(1, "hi")
            assert await next_item(subscription) == "hi"
    finally:
        await broker.stop()


async def test_listener_is_not_a_busy_loop(redis_broker, redis_server):  # noqa: F811
    async with redis_broker.subscribe(1):
        cpu = time.process_time()
        await asyncio.sleep(0.6)  # connected and idle
        redis_server.stop()
        await asyncio.sleep(0.6)  # down, reconnecting with backoff
        assert time.process_time() - cpu < 0.15


# --- Redis: shutdown --------------------------------------------------------------


async def test_stop_leaves_no_tasks_and_logs_nothing(redis_server, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    broker = RedisBroker(redis_server.url)
    await broker.start()
    async with broker.subscribe(1) as subscription:
        await broker.publish(1, "x")
        assert await next_item(subscription) == "x"
    await broker.stop()
    await asyncio.sleep(0)
    assert other_tasks() == set()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_stop_while_redis_is_down(redis_server):  # noqa: F811
    broker = RedisBroker(redis_server.url)
    await broker.start()
    async with broker.subscribe(1):
        redis_server.kill()
        await eventually(lambda: broker.status == "degraded", timeout=3, what="degraded")
    started = time.monotonic()
    await asyncio.wait_for(broker.stop(), 3)
    assert time.monotonic() - started < 1
    await asyncio.sleep(0)
    assert other_tasks() == set()


# --- Redis: account changes (server/principal_cache.py) ---------------------------


class AccountWatcher:
    def __init__(self) -> None:
        self.forgotten: list[int] = []
        self.cleared = 0

    def forget_user(self, user_id: int) -> None:
        self.forgotten.append(user_id)

    def clear(self) -> None:
        self.cleared += 1


async def test_an_account_change_reaches_every_worker_whatever_users_it_holds(redis_server):  # noqa: F811
    worker_a, worker_b = RedisBroker(redis_server.url), RedisBroker(redis_server.url)
    on_a, on_b = AccountWatcher(), AccountWatcher()
    worker_a.watch_accounts(on_a)
    worker_b.watch_accounts(on_b)
    await worker_a.start()
    await worker_b.start()
    try:
        assert worker_a.hears_account_changes and worker_b.hears_account_changes
        # Neither worker holds a socket of user 7: the change still reaches both.
        await worker_a.publish_account_change(7)
        assert on_a.forgotten[:1] == [7]  # the publishing worker at once, before any round trip
        await eventually(lambda: on_b.forgotten == [7], what="the other worker to hear it")
        await eventually(lambda: on_a.forgotten == [7, 7], what="its own echo")
    finally:
        await worker_a.stop()
        await worker_b.stop()


async def test_account_changes_are_not_trusted_while_the_pubsub_connection_is_down(redis_server):  # noqa: F811
    broker, watcher = RedisBroker(redis_server.url), AccountWatcher()
    broker.watch_accounts(watcher)
    assert not broker.hears_account_changes  # not started
    await broker.start()
    try:
        assert broker.hears_account_changes
        cleared = watcher.cleared
        redis_server.stop()
        await eventually(lambda: not broker.hears_account_changes, timeout=3, what="not hearing")
        redis_server.start()
        await eventually(lambda: broker.hears_account_changes, timeout=5, what="hearing again")
        # What was published while it was gone was lost: everything remembered goes.
        assert watcher.cleared == cleared + 1
    finally:
        await broker.stop()
    assert not broker.hears_account_changes


async def test_the_memory_broker_never_claims_to_hear_other_processes():
    broker, watcher = MemoryBroker(), AccountWatcher()
    broker.watch_accounts(watcher)
    assert not broker.hears_account_changes  # the CLI, a separate process, cannot reach it
    await broker.publish_account_change(3)
    assert watcher.forgotten == [3]
