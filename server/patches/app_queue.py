"""A light bounded queue of ASGI events per connection, closed when the app returns.

Changes: Hypercorn's per-connection task group (`TaskGroup.spawn_app`, built
from the module-level name `hypercorn.asyncio.tcp_server.TaskGroup`) gives the
app an asyncio.Queue: four deques, ~3 KiB per connection even while empty,
and on an idle live socket that queue is always empty. This patch's task
group is Hypercorn's with a BoundedLightQueue (server/queues.py) of the same
bound, and its `_handle` is Hypercorn's, edited to close the queue as soon as
the app returns. Hypercorn still puts events for the app after that (the
client's remaining body, then `http.disconnect` while it ends the stream in
`send(None)`); with the queue full -- an upload answered 401 or 413 before
its body was read -- that put waited forever, and so did the connection
(tests/test_serving.py).

Buys: #3, memory per idle socket (docs/benchmarks.md, "Patches, with and
without"), and the fix above.

Checked against: hypercorn 0.18.0 (the copied `_handle` and `spawn_app` are
compared with the installed ones by their source's digest).
"""
from __future__ import annotations

import asyncio
from functools import partial

from hypercorn.asyncio import task_group as hypercorn_task_group
from hypercorn.asyncio import tcp_server as hypercorn_tcp_server
from hypercorn.config import Config

from ..queues import BoundedLightQueue
from .base import Patch, changed_source, missing_attributes

NAME = "app_queue"
# Hypercorn 0.18.0's code that _handle and LightQueueTaskGroup.spawn_app are edited copies of.
_COPIED = {"task_group._handle": "e37cfe3db06eb470", "TaskGroup.spawn_app": "6606faaadfc368e3"}


async def _handle(app, config: Config, scope, app_queue: BoundedLightQueue, send, sync_spawn, call_soon) -> None:
    try:
        await app(scope, app_queue.get, send, sync_spawn, call_soon)
    except asyncio.CancelledError:
        raise
    except Exception:
        await config.log.exception("Error in ASGI Framework")
    finally:
        app_queue.close()
        await send(None)


class LightQueueTaskGroup(hypercorn_task_group.TaskGroup):
    async def spawn_app(self, app, config: Config, scope, send):
        app_queue = BoundedLightQueue(config.max_app_queue_size)

        def _call_soon(func, *args):
            future = asyncio.run_coroutine_threadsafe(func(*args), self._loop)
            return future.result()

        self.spawn(_handle, app, config, scope, app_queue, send,
                   partial(self._loop.run_in_executor, None), _call_soon)
        return app_queue.put


def problem() -> str | None:
    if getattr(hypercorn_tcp_server, "TaskGroup", None) not in (hypercorn_task_group.TaskGroup, LightQueueTaskGroup):
        return "hypercorn.asyncio.tcp_server no longer builds its task groups from TaskGroup"
    # spawn_app's digest also holds what it uses of the group (self._loop, self.spawn).
    return (missing_attributes(hypercorn_task_group.TaskGroup, ("spawn",), "TaskGroup")
            or changed_source(_COPIED, {"task_group._handle": hypercorn_task_group._handle,
                                        "TaskGroup.spawn_app": hypercorn_task_group.TaskGroup.spawn_app}))


def apply(settings) -> None:
    hypercorn_tcp_server.TaskGroup = LightQueueTaskGroup


PATCH = Patch(NAME, {"hypercorn": "0.18.0"}, problem, apply)
