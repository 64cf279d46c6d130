"""The live protocol without a socket: what a client's message means, what
goes back, and what a broker event asks of a socket (docs/protocol.md).

Nothing here reads or writes a socket or knows the web framework. `answer`
turns one raw client message and the connection's state into one reply; the
only effect it has is the buffer write the caller passes in, so
tests/live/test_protocol.py drives it with plain values.
"""
from __future__ import annotations

import json
import math
import time
from typing import Awaitable, Callable

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
CLOSE_REVOKED = 4401
RATE_PER_SECOND = 10.0
RATE_BURST = 30.0
MAX_ECHO_CHARS = 256


def max_message_chars(max_text_bytes: int) -> int:
    """The largest message the protocol needs: a `set` of MAX_TEXT_BYTES of
    text (JSON may escape some characters, hence the factor 2)."""
    return 2 * max_text_bytes + 64 * 1024


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class ClientState:
    """What the protocol remembers of one client between its messages. The
    connection's record extends it (one object per socket, no instance
    dict: it lives as long as the socket)."""

    __slots__ = ("bucket", "strikes", "last_heard", "heartbeats")

    def __init__(self) -> None:
        self.bucket = TokenBucket(RATE_PER_SECOND, RATE_BURST)
        self.strikes = 0
        self.last_heard = time.monotonic()
        self.heartbeats = False  # the client sends `ping`s, so its silence means a dead link


class Close:
    """Reply: close the socket with this code and reason, and read no more."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code, self.reason = code, reason

    def __eq__(self, other) -> bool:
        return isinstance(other, Close) and (other.code, other.reason) == (self.code, self.reason)

    def __repr__(self) -> str:
        return f"Close({self.code}, {self.reason!r})"


class _Snapshot:
    def __repr__(self) -> str:
        return "SNAPSHOT"


# Reply: send the user's buffer as it is now (a `buffer` message).
SNAPSHOT = _Snapshot()

Reply = dict | Close | _Snapshot


class Refused(Exception):
    """The buffer write said no (quota, rate limit, text too big): answered
    as an `error` message, the socket stays open."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.retry_after = code, message, retry_after


class EncryptedText:
    """An encrypted `set` (docs/e2e.md): the key, meta and body blobs as the
    client sent them (b64u strings), checked by the store, not here."""

    __slots__ = ("encoding", "key", "meta", "ciphertext")

    def __init__(self, encoding: str, key: str, meta: str, ciphertext: str) -> None:
        self.encoding, self.key, self.meta, self.ciphertext = encoding, key, meta, ciphertext

    def __eq__(self, other) -> bool:
        return isinstance(other, EncryptedText) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)


# Stores a text (a str, or an EncryptedText) and returns its seq; raises Refused.
StoreText = Callable[[str | EncryptedText], Awaitable[int]]


def error(code: str, message: str, **extra) -> dict:
    return {"type": "error", "code": code, "message": message, **extra}


def hello(version: str, node: str, device: dict, max_text_bytes: int) -> dict:
    return {"type": "hello", "version": version, "node": node, "device": device, "max_text_bytes": max_text_bytes}


def devices(listed: list) -> dict:
    return {"type": "devices", "devices": listed}


def encode(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


def _not_finite(value: str) -> float:
    raise ValueError(f"{value} is not a number JSON can carry")


def _finite_float(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        _not_finite(value)
    return number


def parse_message(raw: str | bytes):
    """A client message as JSON, refusing what JSON cannot send back: NaN,
    Infinity and numbers too big for a double (Python reads all three, and
    echoing one in a `pong` wrote invalid JSON). Too deep a nesting raises
    RecursionError, too long an integer ValueError."""
    return json.loads(raw, parse_constant=_not_finite, parse_float=_finite_float)


def _echoable(value) -> bool:
    """Whether a client's `id` or `t` may be sent back as it came: a short
    string, a number or null, never a structure (a deep one could not be
    encoded again)."""
    return value is None or isinstance(value, (bool, int, float)) or (
        isinstance(value, str) and len(value) <= MAX_ECHO_CHARS)


async def answer(raw: str | bytes, state: ClientState, max_chars: int, store: StoreText) -> Reply:
    """The reply to one raw client message: a message to send, a Close, or
    SNAPSHOT. Too big a message closes (1009); past the token bucket it is
    an `error`, and RATE_BURST refusals in a row close (1008)."""
    state.last_heard = time.monotonic()
    if len(raw) > max_chars:
        return Close(CLOSE_TOO_BIG, "message too big")
    if not state.bucket.take():
        state.strikes += 1
        if state.strikes > RATE_BURST:
            return Close(CLOSE_POLICY, "too many messages")
        return error("rate_limited", f"Slow down: at most {RATE_PER_SECOND:g} messages per second.", retry_after=1)
    state.strikes = 0
    try:
        message = parse_message(raw)
    except (TypeError, ValueError, RecursionError):
        return error("invalid_json", "Messages are JSON objects with a type.")
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return error("invalid_message", "Messages are JSON objects with a type.")
    return await _dispatch(message, state, store)


async def _dispatch(message: dict, state: ClientState, store: StoreText) -> Reply:
    kind = message["type"]
    if kind == "ping":
        if not _echoable(message.get("t")):
            return error("invalid_message", f"`t` is a string of up to {MAX_ECHO_CHARS} characters, a number or null.")
        state.heartbeats = True
        return {"type": "pong", "t": message.get("t")}
    if kind == "set":
        text = message.get("text")
        if "encrypted" in message:
            fields = [message.get(name) for name in ("encrypted", "key", "meta", "ciphertext")]
            if not all(isinstance(value, str) for value in fields) or not _echoable(message.get("id")):
                return error("invalid_message", "An encrypted `set` needs the strings `encrypted`, `key`, `meta` "
                                                "and `ciphertext` (docs/e2e.md), and an echoable `id`.")
            text = EncryptedText(*fields)
        elif not isinstance(text, str) or not _echoable(message.get("id")):
            return error("invalid_message", f"`set` needs a string `text`, and an `id` that is a string of up "
                                            f"to {MAX_ECHO_CHARS} characters, a number or null.")
        try:
            seq = await store(text)
        except Refused as refused:
            extra = {"retry_after": refused.retry_after} if refused.retry_after is not None else {}
            return error(refused.code, refused.message, **extra)
        return {"type": "ack", "id": message.get("id"), "seq": seq}
    if kind == "sync":
        return SNAPSHOT
    # Its type is the client's own input: named, but only so much of it.
    return error("unknown_type", f"Unknown message type {kind[:40]!r}.")


FORWARD = "forward"  # an event for the client: send it as it came (already-encoded JSON)
SEND_DEVICES = "devices"  # the user's devices changed: send the list
REVOKED = "revoked"  # this device was logged out: close with CLOSE_REVOKED
IGNORE = "ignore"  # an internal event about someone else


MAX_CLOSE_REASON_BYTES = 123  # RFC 6455 §5.5: a control frame's payload is at most 125 bytes


def revoked_reason(message: str) -> str:
    """The 4401 close reason for a `_revoke` event; when it says which device
    did it (`by`), the app shows "This device was logged out from Laptop"."""
    by = json.loads(message).get("by")
    if not isinstance(by, str) or not by:
        return "this device was logged out"
    reason = f"logged out from {by}"
    while len(reason.encode()) > MAX_CLOSE_REASON_BYTES:
        reason = reason[:-1]
    return reason


def on_event(message: str, device_key: str) -> str:
    """What one event on the user's channel asks of the socket of device
    `device_key`. Internal events (`_presence`, `_revoke`; see
    buffer.publish) are acted on, never forwarded."""
    if not message.startswith('{"type":"_'):
        return FORWARD
    event = json.loads(message)
    if event["type"] == "_presence":
        return SEND_DEVICES
    if event["type"] == "_revoke" and device_key in event["devices"]:
        return REVOKED
    return IGNORE
