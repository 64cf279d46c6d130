"""The floor for the real-time benchmarks: the smallest honest equivalent of /ws.

Two (or N) processes of the `websockets` library's server share one port with
SO_REUSEPORT. A socket authenticates with `?token=<user id>.<HMAC>` (checked
before the handshake completes, like our server's bearer token), says hello
with the name of its process, and may send `{"type": "set", "text": ...}`;
that is published to the user's Redis channel (redis.asyncio), and one pub/sub
listener per process fans every message out to the local sockets of that
user. No storage, no presence, no compression: what is left is the cost of
Python, asyncio, a WebSocket library and Redis, so the ratio against it says
what Quart, Hypercorn and our own code add.

    python -m bench.baseline_ws --port 9000 --redis redis://127.0.0.1:6379/0 --workers 2
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
from websockets.asyncio.server import broadcast, serve

CHANNEL_PREFIX = "baseline:user:"
DEFAULT_SECRET = "cloudbuffer-bench-baseline"


def make_token(user_id: int, secret: str = DEFAULT_SECRET) -> str:
    mac = hmac.new(secret.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()[:32]
    return f"{user_id}.{mac}"


def user_of_token(token: str, secret: str) -> int | None:
    user, _, mac = token.partition(".")
    if not user.isdigit() or not hmac.compare_digest(make_token(int(user), secret), token):
        return None
    return int(user)


async def worker(port: int, redis_url: str, secret: str) -> None:
    from bench.system import raise_nofile_limit

    raise_nofile_limit()
    node = secrets.token_hex(4)
    publisher = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = aioredis.Redis.from_url(redis_url, decode_responses=True).pubsub()
    await pubsub.subscribe(f"baseline:control:{node}")  # pub/sub mode from the start
    local: dict[int, set] = {}
    lock = asyncio.Lock()

    async def listen() -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "message":
                user_id = int(message["channel"][len(CHANNEL_PREFIX):])
                broadcast(local.get(user_id, ()), message["data"])

    def authenticate(connection, request):
        token = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
        user_id = user_of_token(token, secret)
        if user_id is None:
            return connection.respond(401, "unauthorized\n")
        connection.user_id = user_id
        return None

    async def handler(ws) -> None:
        user_id = ws.user_id
        channel = CHANNEL_PREFIX + str(user_id)
        sockets = local.setdefault(user_id, set())
        sockets.add(ws)
        try:
            if len(sockets) == 1:
                async with lock:
                    await pubsub.subscribe(channel)
            await ws.send(json.dumps({"type": "hello", "node": node}))
            async for raw in ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(message, dict) and message.get("type") == "set":
                    text = str(message.get("text", ""))
                    await publisher.publish(channel, json.dumps(
                        {"type": "buffer", "kind": "text", "size": len(text), "text": text}))
                    await ws.send(json.dumps({"type": "ack", "id": message.get("id")}))
        finally:
            sockets.discard(ws)
            if not sockets:
                del local[user_id]
                async with lock:
                    await pubsub.unsubscribe(channel)

    listener = asyncio.create_task(listen())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve(handler, "127.0.0.1", port, reuse_port=True, process_request=authenticate,
                     compression=None, ping_interval=20, ping_timeout=20):
        await stop.wait()
    listener.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--secret", default=os.environ.get("BASELINE_SECRET", DEFAULT_SECRET))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(worker(args.port, args.redis, args.secret))
        return 0
    children = [
        subprocess.Popen([sys.executable, "-m", "bench.baseline_ws", "--worker", "--port", str(args.port),
                          "--redis", args.redis, "--secret", args.secret])
        for _ in range(args.workers)
    ]

    def stop(*_):
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    codes = [child.wait() for child in children]
    return max(abs(code) for code in codes) if any(codes) else 0


if __name__ == "__main__":
    sys.exit(main())
