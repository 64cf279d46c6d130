"""The worker's periodic care of its live sockets."""
from __future__ import annotations

import asyncio
import time

from ..auth import principal_still_valid
from ..presence import PRESENCE_REFRESH
from ..rounds import Rounds
from .protocol import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_REVOKED

HEARTBEAT_TIMEOUT = 60.0  # for clients that send `ping`: silence this long means a dead link


class KeepAlive:
    """Every PRESENCE_REFRESH seconds each of the worker's sockets is
    visited, by one task spread over the period (server/rounds.py): its
    presence entry is refreshed, a heartbeat client that went silent (a
    phone that lost its network without closing) is dropped, and the socket
    of a device whose session or token is gone is closed. When the server
    starts shutting down every socket is asked to close with 1001. A task
    per socket did the same at ~1.3 KiB each (#3 in docs/benchmarks.md).

    One per app, built by create_app and kept in its Services (whose
    broker, presence and shutting_down it uses); `app_context` is the app's,
    entered for each slice's work. The sockets it visits are
    connection.LiveConnection records (request_close wakes their pump)."""

    def __init__(self, app_context, services) -> None:
        self.app_context = app_context
        self.services = services
        # Read at each turn, so tests can shorten it.
        self.connections = Rounds(lambda: PRESENCE_REFRESH, self._visit, "cloudbuffer-live-keep-alive")
        self._shutdown_watch: asyncio.Task | None = None

    def add(self, conn) -> None:
        self.connections.add(conn)
        loop = asyncio.get_running_loop()
        # One waiter for the whole worker, started with its first socket (a
        # test app may serve on more than one loop in its life).
        if self._shutdown_watch is None or self._shutdown_watch.get_loop() is not loop:
            self._shutdown_watch = loop.create_task(self._close_all_at_shutdown(),
                                                    name="cloudbuffer-live-shutdown-watch")
        if self.services.shutting_down.is_set():
            conn.request_close(CLOSE_GOING_AWAY, "server shutting down")

    def discard(self, conn) -> None:
        self.connections.discard(conn)

    async def _close_all_at_shutdown(self) -> None:
        await self.services.shutting_down.wait()
        for conn in list(self.connections):
            conn.request_close(CLOSE_GOING_AWAY, "server shutting down")

    async def _visit(self, connections: list) -> None:
        async with self.app_context():
            now = time.monotonic()
            for conn in connections:
                if conn.heartbeats and now - conn.last_heard > HEARTBEAT_TIMEOUT:
                    conn.request_close(CLOSE_POLICY, "no heartbeat")
            connections = [c for c in connections if c.closing is None]
            # A session ended where no event could reach us (`cloudbuffer user
            # passwd` on a server without Redis) still closes within one period.
            # With Redis, every revocation arrives as a `_revoke` event, and one
            # lost in an outage is caught by the check after the RESYNC; polling
            # the database for every socket every period would cost a query per
            # socket per 20 s -- the fan-out capacity benchmark (#2) hit that wall.
            if self.services.broker.name == "memory":
                valid = await asyncio.gather(*(principal_still_valid(c.principal) for c in connections))
                for conn, still_valid in zip(connections, valid):
                    if not still_valid:
                        conn.request_close(CLOSE_REVOKED, "this device was logged out")
                connections = [c for c in connections if c.closing is None]
            presence = self.services.presence  # batches one slice's refreshes into one round trip
            await asyncio.gather(*(presence.refresh(c.principal.user_id, c.conn_id, c.device)
                                   for c in connections))
