"""The live protocol alone: plain values in, replies out, no socket and no app."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from server.live import protocol
from server.live.protocol import (CLOSE_POLICY, CLOSE_TOO_BIG, RATE_BURST, SNAPSHOT, ClientState, Close, Refused,
                                  answer, on_event)

MAX_CHARS = 1000


class Store:
    """The buffer write the connection passes in: remembers what it was given."""

    def __init__(self, refusal: Refused | None = None) -> None:
        self.texts: list[str] = []
        self.refusal = refusal

    async def __call__(self, text: str) -> int:
        if self.refusal is not None:
            raise self.refusal
        self.texts.append(text)
        return len(self.texts)


async def reply_to(message, state: ClientState | None = None, store: Store | None = None):
    raw = message if isinstance(message, str) else json.dumps(message)
    return await answer(raw, state or ClientState(), MAX_CHARS, store or Store())


async def test_set_stores_the_text_and_acks_with_its_seq_and_the_clients_id():
    store = Store()
    assert await reply_to({"type": "set", "text": "hi", "id": "a1"}, store=store) == {"type": "ack", "id": "a1",
                                                                                      "seq": 1}
    assert await reply_to({"type": "set", "text": "again"}, store=store) == {"type": "ack", "id": None, "seq": 2}
    assert store.texts == ["hi", "again"]


async def test_a_refused_write_is_an_error_message_with_its_wait():
    store = Store(Refused("rate_limited", "Too many writes.", retry_after=3))
    assert await reply_to({"type": "set", "text": "x"}, store=store) == {
        "type": "error", "code": "rate_limited", "message": "Too many writes.", "retry_after": 3}
    store = Store(Refused("too_large", "That text is too big."))
    assert await reply_to({"type": "set", "text": "x"}, store=store) == {
        "type": "error", "code": "too_large", "message": "That text is too big."}


@pytest.mark.parametrize("message", [
    {"type": "set"},
    {"type": "set", "text": 5},
    {"type": "set", "text": "x", "id": {"nested": True}},
    {"type": "set", "text": "x", "id": "i" * (protocol.MAX_ECHO_CHARS + 1)},
])
async def test_a_bad_set_is_invalid_and_stores_nothing(message):
    store = Store()
    reply = await reply_to(message, store=store)
    assert reply["type"] == "error" and reply["code"] == "invalid_message"
    assert store.texts == []


async def test_ping_echoes_t_and_marks_the_client_as_sending_heartbeats():
    state = ClientState()
    assert not state.heartbeats
    assert await reply_to({"type": "ping", "t": 12.5}, state) == {"type": "pong", "t": 12.5}
    assert state.heartbeats
    assert await reply_to({"type": "ping"}, state) == {"type": "pong", "t": None}


async def test_ping_with_a_structure_for_t_is_refused_and_marks_nothing():
    state = ClientState()
    reply = await reply_to({"type": "ping", "t": [1, 2]}, state)
    assert reply["code"] == "invalid_message" and not state.heartbeats


async def test_sync_asks_for_the_snapshot():
    assert await reply_to({"type": "sync"}) is SNAPSHOT


@pytest.mark.parametrize("raw, code", [
    ("not json", "invalid_json"),
    ('{"type": "ping", "t": NaN}', "invalid_json"),
    ('{"type": "ping", "t": 1e999}', "invalid_json"),
    ("[" * 100_000 + "]" * 100_000, "invalid_json"),
    ("[1, 2]", "invalid_message"),
    ('{"type": 5}', "invalid_message"),
    ('{"text": "no type"}', "invalid_message"),
])
async def test_what_is_not_a_message_is_an_error(raw, code):
    reply = await answer(raw, ClientState(), 10**6, Store())
    assert reply["type"] == "error" and reply["code"] == code


async def test_an_unknown_type_is_named_but_only_so_much_of_it():
    reply = await reply_to({"type": "x" * 500})
    assert reply["code"] == "unknown_type" and "x" * 40 in reply["message"] and "x" * 41 not in reply["message"]


async def test_too_big_a_message_closes_with_1009_before_it_is_read():
    store = Store()
    reply = await reply_to(json.dumps({"type": "set", "text": "x" * MAX_CHARS}), store=store)
    assert reply == Close(CLOSE_TOO_BIG, "message too big") and store.texts == []


async def test_a_flood_is_rate_limited_then_closed_and_a_pause_forgives_it():
    state = ClientState()
    replies = [await reply_to({"type": "ping"}, state) for _ in range(int(RATE_BURST))]
    assert all(reply["type"] == "pong" for reply in replies)  # the burst passes
    refusals = [await reply_to({"type": "ping"}, state) for _ in range(int(RATE_BURST))]
    assert all(reply["code"] == "rate_limited" and reply["retry_after"] == 1 for reply in refusals)
    assert await reply_to({"type": "ping"}, state) == Close(CLOSE_POLICY, "too many messages")
    # A message the bucket lets through again clears the strikes.
    fresh = ClientState()
    fresh.strikes = int(RATE_BURST)
    assert (await reply_to({"type": "ping"}, fresh))["type"] == "pong" and fresh.strikes == 0


async def test_every_message_counts_as_heard_from_the_client():
    state = ClientState()
    state.last_heard = 0.0
    await reply_to("not json", state)
    assert state.last_heard > 0


def test_events_for_the_client_are_forwarded_as_they_came():
    assert on_event('{"type":"buffer","seq":3}', "s1") is protocol.FORWARD


def test_internal_events_are_acted_on_never_forwarded():
    assert on_event('{"type":"_presence"}', "s1") is protocol.SEND_DEVICES
    assert on_event('{"type":"_revoke","devices":["s1","t2"]}', "s1") is protocol.REVOKED
    assert on_event('{"type":"_revoke","devices":["t2"]}', "s1") is protocol.IGNORE


def test_messages_are_encoded_compactly():
    message = protocol.hello("1.0", "n1", {"id": "s1", "name": "x", "kind": "session"}, 10)
    assert protocol.encode(message) == json.dumps(message, separators=(",", ":"))
    assert protocol.devices([]) == {"type": "devices", "devices": []}


def test_the_protocol_knows_no_framework_and_no_socket():
    tree = ast.parse(Path(protocol.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert not any(isinstance(node, ast.ImportFrom) and node.level > 0 for node in ast.walk(tree))
    assert imported <= {"__future__", "json", "math", "time", "typing"}


def test_the_revoked_close_reason_names_the_device_and_fits_a_close_frame():
    from server.live.protocol import revoked_reason

    assert revoked_reason('{"type":"_revoke","devices":["s1"]}') == "this device was logged out"
    assert revoked_reason('{"type":"_revoke","devices":["s1"],"by":"Laptop"}') == "logged out from Laptop"
    long = revoked_reason(json.dumps({"type": "_revoke", "devices": ["s1"], "by": "ü" * 64}))  # 128 bytes of name
    assert len(long.encode()) <= 123 and long.startswith("logged out from ü")


async def test_an_encrypted_set_hands_its_blobs_to_the_store():
    store = Store()
    message = {"type": "set", "encrypted": "aes128gcm", "key": "K", "meta": "M", "ciphertext": "C", "id": 7}
    assert await reply_to(message, store=store) == {"type": "ack", "id": 7, "seq": 1}
    assert store.texts == [protocol.EncryptedText("aes128gcm", "K", "M", "C")]


@pytest.mark.parametrize("broken", [{"key": None}, {"meta": 3}, {"ciphertext": ["C"]}, {"encrypted": True},
                                    {"id": {"deep": 1}}])
async def test_an_encrypted_set_without_its_strings_is_an_error_and_stores_nothing(broken):
    store = Store()
    message = {"type": "set", "encrypted": "aes128gcm", "key": "K", "meta": "M", "ciphertext": "C", **broken}
    reply = await reply_to(message, store=store)
    assert reply["type"] == "error" and reply["code"] == "invalid_message" and store.texts == []
