"""How many request bodies each user is sending to this worker at once.

A body being received holds memory until its request is done: the chunks
waiting to be read (up to 2 MiB, wrappers.py) and a text item or a form's
text fields (up to MAX_TEXT_BYTES); file bytes go to disk. One user with
many bodies open at once holds as many of those, so UPLOADS_IN_FLIGHT
bounds them per user. It counts per worker process because memory is a
process's own; the next body is refused with 413 before any of it is read (issue 14
asks 413 for every bound on bodies; Retry-After says it is temporary, as
RFC 9110 §15.5.14 asks of a 413 whose condition will pass).
Every route that reads a body says @receives_body (a policy test checks).
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import wraps
from typing import Iterator

from .auth import current_principal
from .errors import APIError
from .services import services


class BodiesInFlight:
    __slots__ = ("limit", "counts")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[int, int] = {}

    @contextmanager
    def hold(self, user_id: int) -> Iterator[None]:
        count = self.counts.get(user_id, 0)
        if count >= self.limit:
            raise APIError(413, "too_many_uploads",
                           f"You are already sending {count} uploads to this server at once, the most it takes "
                           "from one account. Send this one when one of them has finished.",
                           {"Retry-After": "1"})
        self.counts[user_id] = count + 1
        try:
            yield
        finally:
            if self.counts[user_id] <= 1:
                del self.counts[user_id]
            else:
                self.counts[user_id] -= 1


def receives_body(handler):
    """Route decorator: the request's body counts against the asker's bodies
    in flight while the handler runs. Put it below @login_required; an
    anonymous request is refused (or sent to log in) without its body being
    read, so it is not counted."""

    @wraps(handler)
    async def hold_then_handle(*args, **kwargs):
        principal = await current_principal()
        if principal is None:
            return await handler(*args, **kwargs)
        with services().bodies_in_flight.hold(principal.user_id):
            return await handler(*args, **kwargs)

    hold_then_handle.receives_body = True  # read by the route-policy test
    return hold_then_handle
