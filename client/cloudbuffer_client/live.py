"""The buffer's changes over /ws (docs/protocol.md), for `watch` and the agent:
reconnects with backoff, and every (re)connect's snapshot resyncs to the
latest item; `seq` drops duplicates and anything older."""
from __future__ import annotations

import asyncio
import json
import random
import sys
from typing import AsyncIterator

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .api import user_agent
from .config import Login
from .errors import REFUSED, ClientError

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
LOGGED_OUT = 4401


def ws_url(url: str) -> str:
    return "ws" + url[len("http"):] + "/ws" if url.startswith("http") else url + "/ws"


def note(message: str) -> None:
    print(f"cloudbuffer: {message}", file=sys.stderr, flush=True)


async def buffer_events(login: Login, backoff_first: float = BACKOFF_FIRST,
                        key_changes: bool = False) -> AsyncIterator[tuple[dict, bool]]:
    """(event, is_baseline) forever: the first snapshot is the baseline (what
    the buffer already held), every later event is newer than the last one.
    With `key_changes`, the account's `e2e` messages (a new epoch, a rotation
    due) come too, never as a baseline."""
    last_seq: int | None = None
    delay = backoff_first
    headers = {"Authorization": f"Bearer {login.token}"}
    while True:
        reason = "closed"
        try:
            async with connect(ws_url(login.url), additional_headers=headers, user_agent_header=user_agent(),
                               open_timeout=10, ping_interval=20, ping_timeout=20, max_size=None) as ws:
                if delay > backoff_first:
                    note(f"connected to {login.url} again")
                delay = backoff_first
                async for raw in ws:
                    try:
                        message = json.loads(raw)
                    except ValueError:
                        continue
                    if key_changes and isinstance(message, dict) and message.get("type") == "e2e":
                        yield message, False
                        continue
                    if not isinstance(message, dict) or message.get("type") != "buffer":
                        continue
                    seq = message.get("seq")
                    if not isinstance(seq, int) or (last_seq is not None and seq <= last_seq):
                        continue
                    baseline = last_seq is None
                    last_seq = seq
                    yield message, baseline
        except InvalidStatus as error:
            if error.response.status_code in (401, 403):
                raise ClientError(REFUSED, f"the server refused this login (HTTP {error.response.status_code}); "
                                           "run `cloudbuffer login`") from None
            reason = f"HTTP {error.response.status_code}"
        except ConnectionClosed as closed:
            if closed.rcvd is not None and closed.rcvd.code == LOGGED_OUT:
                raise ClientError(REFUSED, "this device was logged out; run `cloudbuffer login`") from None
            reason = f"closed ({closed.rcvd.code if closed.rcvd else 'no close frame'})"
        except (OSError, asyncio.TimeoutError, InvalidHandshake) as error:
            reason = str(error) or type(error).__name__
        wait = delay * random.uniform(0.8, 1.2)
        note(f"lost {login.url} ({reason}); reconnecting in {wait:.1f} s")
        await asyncio.sleep(wait)
        delay = min(delay * 2, BACKOFF_MAX)
