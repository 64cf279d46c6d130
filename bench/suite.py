"""The seven benchmarks of issue 5, each against its baseline in the same run.

Both stacks (CloudBuffer and the baseline) run for the whole suite, idle when
not under test. A figure is the median of `reps` repetitions; where the two
sides can alternate cheaply (memory, uploads, downloads, request rates) the
repetitions alternate, otherwise the baseline's block follows the subject's.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from bench import http, tus
from bench.hist import Histogram
from bench.live import Driver, Pool, drain, open_elsewhere, open_probes, open_socket
from bench.stacks import BaselineStack, CloudBufferStack, NodePeerStack, SendfileServer
from bench.system import Pinning, cpu_seconds, peak_rss_bytes, reset_peak_rss, rss_bytes

KIB, MIB, GIB = 1024, 1024**2, 1024**3


@dataclass(frozen=True)
class Profile:
    name: str
    reps: int = 3
    probes: int = 10  # probe users (a sender and a receiver each)
    latency_pool: int = 1000  # #1 and #6: idle sockets
    latency_rate: float = 50.0  # changes per second
    latency_seconds: float = 20.0  # per repetition
    ramp_step: int = 500  # #2
    ramp_rate: float = 10.0
    ramp_seconds: float = 3.0  # measuring window per step
    ramp_max: int = 15000  # the ramp stops here (capacity is then "at least" this)
    ramp_p95: float = 0.250
    memory_low: int = 1000  # #3
    memory_high: int = 5000
    settle: float = 1.5  # seconds after connecting, before reading RSS
    transfer_bytes: int = GIB  # #4, #5, #6
    rest_seconds: float = 10.0  # #6: the at-rest window
    posts_seconds: float = 5.0  # #7
    posts_connections: int = 8
    restart: bool = True  # fresh server processes where memory matters (off only for the smoke test)
    e2e_mib: int = 128  # #9: the file the app uploads, plaintext and encrypted
    e2e_texts: int = 40  # #10: texts per account
    scale_posts: int = 100  # #11: #1's posts per round (posts/s and #4/#5 use posts_seconds and scale_bytes)
    scale_bytes: int = 256 * MIB  # #11: the file streamed up and down, local disk vs S3


PROFILES = {
    # 20 probe users: each sender stays at 2.5 changes/s, far below the server's
    # per-socket limit (10/s) even if a stall makes its messages arrive in a burst.
    "full": Profile("full", probes=20, ramp_max=12000),
    # A sanity check in about two minutes: one repetition, small counts and files.
    "quick": Profile("quick", reps=1, probes=10, latency_pool=300, latency_seconds=4, ramp_step=500,
                     ramp_seconds=2, ramp_max=1500, memory_low=200, memory_high=600, settle=1.0,
                     transfer_bytes=128 * MIB, rest_seconds=3, posts_seconds=2, e2e_mib=32, e2e_texts=10,
                     scale_posts=40, scale_bytes=64 * MIB),
    # For the smoke test: every code path, tiny and fast, one repetition, no restarts.
    "smoke": Profile("smoke", reps=1, probes=2, latency_pool=10, latency_rate=20, latency_seconds=0.5,
                     ramp_step=10, ramp_rate=10, ramp_seconds=0.3, ramp_max=20, memory_low=10, memory_high=30,
                     settle=0.1, transfer_bytes=4 * MIB, rest_seconds=0.3, posts_seconds=0.3,
                     posts_connections=2, restart=False, e2e_mib=2, e2e_texts=2, scale_posts=5,
                     scale_bytes=4 * MIB),
}


POST_TEXT = ("x" * 1023 + "\n").encode()  # #7's 1 KiB text


def median(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


class Suite:
    def __init__(self, profile: Profile, workdir: Path, pinning: Pinning, only: set[str] | None = None,
                 log=print, server_env: dict[str, str] | None = None) -> None:
        self.p = profile
        self.server_env = server_env
        self.workdir = workdir
        self.pinning = pinning
        self.only = only
        self.log = log
        self.results: list[dict] = []
        self.block = os.urandom(MIB)  # upload payload: incompressible, repeated
        self.share_token: str | None = None

    def wanted(self, number: str) -> bool:
        return self.only is None or number in self.only

    def add(self, number: str, name: str, metric: str, unit: str, subject: float, baseline: float,
            target: str, passed: bool | None, reps: dict, **details) -> None:
        # A lost change makes a latency infinite: such a figure never passes.
        # None: a comparison with no target (the Node peer's rows).
        passed = None if passed is None else bool(passed) and math.isfinite(subject)
        result = {"id": number, "name": name, "metric": metric, "unit": unit, "subject": subject,
                  "baseline": baseline, "ratio": ratio(subject, baseline), "target": target, "pass": passed,
                  "reps": reps, **details}
        self.results.append(result)
        self.log(f"#{number} {name}: {metric} {subject:.4g} {unit} vs baseline {baseline:.4g} {unit} "
                 f"-> {'—' if passed is None else 'PASS' if passed else 'MISS'} ({target})")

    # -- the run ------------------------------------------------------------

    async def run(self) -> list[dict]:
        p = self.p
        seeded = max(p.ramp_max, p.memory_high, p.latency_pool)
        self.log(f"starting stacks ({seeded} pool devices seeded) ...")
        cb, base = CloudBufferStack(self.workdir, self.pinning, self.server_env), BaselineStack(self.workdir, self.pinning)
        # Issue 15's peer, for #1 and #7: a Node.js server with `ws`, in memory.
        peer = NodePeerStack(self.workdir, self.pinning)
        starts = [asyncio.to_thread(cb.start, seeded, p.probes), asyncio.to_thread(base.start)]
        if self.wanted("1") or self.wanted("7"):
            starts.append(asyncio.to_thread(peer.start))
        started = await asyncio.gather(*starts, return_exceptions=True)
        if any(isinstance(outcome, BaseException) for outcome in started):
            await asyncio.gather(asyncio.to_thread(cb.stop), asyncio.to_thread(base.stop), asyncio.to_thread(peer.stop),
                                 return_exceptions=True)
            raise next(outcome for outcome in started if isinstance(outcome, BaseException))
        self.cb, self.base, self.peer = cb, base, peer
        self.pool = Pool(self.pinning)
        try:
            if self.wanted("3"):
                await self.bench_memory()
            if self.wanted("1") or self.wanted("6"):
                await self.bench_latency_and_interference()
            if self.wanted("2"):
                await self.bench_capacity()
            if self.wanted("7"):
                await self.bench_posts()
            if self.wanted("8"):
                await self.bench_tus()
            if self.wanted("4") or self.wanted("5"):
                if p.restart:
                    await asyncio.to_thread(self.cb.restart)
                await self.bench_upload()
                if self.wanted("5"):
                    await self.bench_download()
        finally:
            await self.pool.shutdown()
            await asyncio.gather(asyncio.to_thread(self.base.stop), asyncio.to_thread(self.cb.stop),
                                 asyncio.to_thread(self.peer.stop))
        if self.wanted("9") or self.wanted("10"):
            await self.bench_e2e_browser()  # a server and Chromium of its own, after the others stopped
        if self.wanted("11"):
            await self.bench_scale_out()  # its own servers, PostgreSQL and SeaweedFS, after the others stopped
        self.results.sort(key=lambda r: (int(r["id"]), r["name"]))
        return self.results

    # -- #9 and #10 end-to-end encryption in Chromium -------------------------

    async def bench_e2e_browser(self) -> None:
        from bench import e2e_browser  # Playwright only when these run

        p = self.p
        found = await asyncio.to_thread(e2e_browser.measure, p.e2e_mib, p.reps, p.e2e_texts, self.log)
        upload = found["9"]
        self.add("9", upload["name"], "throughput", "MB/s", upload["subject"], upload["baseline"], upload["target"],
                 upload["pass"], upload["reps"],
                 how=f"real Chromium, the app's uploadFile of a {p.e2e_mib} MiB File, encrypted account vs "
                     "plaintext account alternating on one `cloudbuffer serve` (2 workers, Redis); encrypted "
                     "includes encrypting; baseline: the plaintext upload")
        push = found["10"]
        for quantile in ("p50_ms", "p95_ms"):
            self.add("10", f"{push['name']}, {quantile[:3]}", quantile[:3], "ms", push["subject"][quantile],
                     push["baseline"][quantile], "≤ 1.5× plaintext", push["ratio"][quantile] <= 1.5,
                     push["reps"],
                     how=f"{p.e2e_texts} texts per account, Send on one page to shown on a second page of "
                         "the same account (its own socket); encrypted: decrypted, then shown")

    # -- #11 the shared engines against the defaults ---------------------------

    async def bench_scale_out(self) -> None:
        """#1 and #7 on PostgreSQL against SQLite, #4 and #5 on S3 against the
        local disk, each pair on servers of its own in the same run. No target:
        the issue asks for the cost, explained (bench/findings.md)."""
        from bench import scale_out  # PostgreSQL and SeaweedFS only when this runs

        p = self.p
        found = await scale_out.measure(p.reps, p.posts_seconds, p.scale_posts, p.scale_bytes, self.log)
        engines = f"{found['versions']['postgresql']}; {found['versions']['s3']}"
        servers = ("three `cloudbuffer serve` of 2 workers (a private Redis each): SQLite, PostgreSQL, and SQLite "
                   f"with the files in an S3 bucket; {engines}; rounds interleaved")
        posts = found[scale_out.ROW_POSTS]
        self.add("11", "#7 on PostgreSQL: text posts/s, 8 clients", "throughput", "posts/s",
                 median(posts["PostgreSQL"]), median(posts["SQLite"]), "none: the cost, explained", None,
                 {"subject": posts["PostgreSQL"], "baseline": posts["SQLite"]},
                 how=f"8 users posting 1 KiB texts over keep-alive connections for {p.posts_seconds:g} s; "
                     f"baseline: the same on SQLite; {servers}")
        latency = found[scale_out.ROW_LATENCY]
        for index, quantile in enumerate(("p50", "p95")):
            subject = [pair[index] for pair in latency["PostgreSQL"]]
            baseline = [pair[index] for pair in latency["SQLite"]]
            self.add("11", f"#1 on PostgreSQL: post to push, {quantile}", quantile, "ms", median(subject),
                     median(baseline), "none: the cost, explained", None,
                     {"subject": subject, "baseline": baseline},
                     how=f"{p.scale_posts} texts at 20/s, each from its POST to its push on another device's "
                         f"socket (no idle pool: lighter than #1's own); baseline: SQLite; {servers}")
        transfer = found[scale_out.ROW_TRANSFER]
        for index, (number, what) in enumerate((("4", "upload"), ("5", "download"))):
            subject = [pair[index] for pair in transfer["S3"]]
            baseline = [pair[index] for pair in transfer["local disk"]]
            self.add("11", f"#{number} on S3: {what} {p.scale_bytes // MIB} MiB", "throughput", "MB/s",
                     median(subject), median(baseline), "none: the cost, explained", None,
                     {"subject": subject, "baseline": baseline},
                     how=f"one connection streaming the file {'up (POST /file/buffer)' if what == 'upload' else 'down (GET /file/buffer)'}; "
                         f"baseline: the local files dir; {servers}")

    # -- #3 memory per idle socket --------------------------------------------

    async def _memory_slope(self, stack, compression: str | None) -> dict:
        p = self.p
        if p.restart:
            await asyncio.to_thread(stack.restart)
            await asyncio.sleep(p.settle)
        pids = stack.worker_pids()
        first = await self.pool.add(stack.pool_targets(0, p.memory_low), compression)
        await asyncio.sleep(p.settle)
        low = rss_bytes(pids)
        second = await self.pool.add(stack.pool_targets(p.memory_low, p.memory_high - p.memory_low), compression)
        await asyncio.sleep(p.settle)
        high = rss_bytes(pids)
        connected = first["connected"] + second["connected"]
        await self.pool.close()
        if connected != p.memory_high:
            raise RuntimeError(f"{stack.name}: only {connected} of {p.memory_high} sockets connected: "
                               f"{(first['errors'] + second['errors'])[:3]}")
        return {"rss_low": low, "rss_high": high, "per_socket": (high - low) / (p.memory_high - p.memory_low),
                "connect_seconds": first["seconds"] + second["seconds"]}

    async def bench_memory(self) -> None:
        p = self.p
        runs: dict[str, list[dict]] = {"plain": [], "deflate": [], "baseline": []}
        for rep in range(p.reps):
            self.log(f"#3 memory rep {rep + 1}/{p.reps}")
            runs["plain"].append(await self._memory_slope(self.cb, None))
            runs["deflate"].append(await self._memory_slope(self.cb, "deflate"))
            runs["baseline"].append(await self._memory_slope(self.base, None))
        per = {key: median([r["per_socket"] for r in value]) for key, value in runs.items()}
        span = f"RSS slope from {p.memory_low:,} to {p.memory_high:,} sockets, summed over 2 workers"
        for key, label in (("plain", "no compression offered"), ("deflate", "browser-like permessage-deflate offer")):
            passed = per[key] <= 1.5 * per["baseline"] and per[key] <= 32 * KIB
            self.add("3", f"memory per idle socket ({label})", "bytes/socket", "KiB", per[key] / KIB,
                     per["baseline"] / KIB, "≤ 1.5× baseline and ≤ 32 KiB", passed,
                     {"subject": [r["per_socket"] / KIB for r in runs[key]],
                      "baseline": [r["per_socket"] / KIB for r in runs["baseline"]]},
                     how=span, raw=runs[key], raw_baseline=runs["baseline"])

    # -- #1 push latency and #6 interference ------------------------------------

    async def _latency_setup(self, stack) -> Driver:
        if self.p.restart:
            await asyncio.to_thread(stack.restart)
        added = await self.pool.add(stack.pool_targets(0, self.p.latency_pool))
        if added["failed"]:
            raise RuntimeError(f"{stack.name}: {added['failed']} pool sockets failed: {added['errors'][:3]}")
        probes = await open_probes(stack.probe_targets(self.p.probes), elsewhere=getattr(stack, "workers", 2) > 1)
        await asyncio.sleep(self.p.settle)
        return Driver(probes)

    async def bench_latency_and_interference(self) -> None:
        p = self.p
        summaries: dict[str, list[dict]] = {"cloudbuffer": [], "baseline": [], "node peer": [], "rest": [],
                                            "loaded": []}
        for stack in (self.cb, self.base) + ((self.peer,) if self.wanted("1") else ()):
            driver = await self._latency_setup(stack)
            try:
                if self.wanted("1"):
                    for rep in range(p.reps):
                        self.log(f"#1 push latency {stack.name} rep {rep + 1}/{p.reps}")
                        hist = await driver.run(p.latency_rate, Histogram(), p.latency_seconds)
                        summaries[stack.name].append(hist.summary())
                if stack is self.cb and self.wanted("6"):
                    for rep in range(p.reps):
                        self.log(f"#6 interference rep {rep + 1}/{p.reps}")
                        rest = await driver.run(p.latency_rate, Histogram(), p.rest_seconds)
                        uploads = asyncio.ensure_future(asyncio.gather(
                            *(asyncio.to_thread(self._upload_raw, f"interference-{n}.bin") for n in range(2))))
                        loaded = await driver.run(p.latency_rate, Histogram(), 0, until=uploads)
                        statuses = await uploads
                        summaries["rest"].append(rest.summary())
                        summaries["loaded"].append({**loaded.summary(), "upload_seconds": [s[2] for s in statuses],
                                                    "statuses": [s[0] for s in statuses]})
            finally:
                await driver.close()
                await self.pool.close()
        how = (f"{p.latency_pool:,} idle sockets ({p.latency_pool // 5} users × 5 devices) + {p.probes} probe users "
               f"(sender and receiver on different workers), {p.latency_rate:g} changes/s, 2 workers + Redis")
        if self.wanted("1"):
            subject = median([s["p99_ms"] for s in summaries["cloudbuffer"]])
            baseline = median([s["p99_ms"] for s in summaries["baseline"]])
            self.add("1", "push latency A→B", "p99", "ms", subject, baseline, "p99 ≤ 1.5× baseline",
                     subject <= 1.5 * baseline,
                     {"subject": [s["p99_ms"] for s in summaries["cloudbuffer"]],
                      "baseline": [s["p99_ms"] for s in summaries["baseline"]]},
                     how=f"{how}, {p.reps} × {p.latency_seconds:g} s", subject_detail=summaries["cloudbuffer"],
                     baseline_detail=summaries["baseline"],
                     p50=[median([s["p50_ms"] for s in summaries[k]]) for k in ("cloudbuffer", "baseline")],
                     p95=[median([s["p95_ms"] for s in summaries[k]]) for k in ("cloudbuffer", "baseline")],
                     max=[median([s["max_ms"] for s in summaries[k]]) for k in ("cloudbuffer", "baseline")])
            peer = median([s["p99_ms"] for s in summaries["node peer"]])
            self.add("1", "push latency A→B, against the Node peer", "p99", "ms", subject, peer,
                     "for comparison (issue 15)", None,
                     {"subject": [s["p99_ms"] for s in summaries["cloudbuffer"]],
                      "baseline": [s["p99_ms"] for s in summaries["node peer"]]},
                     peer="node",
                     how="as #1 above; the peer: bench/node_peer/server.js (Node.js, `ws`), one process fanning "
                         "out from memory, no Redis and no storage, so its sender and receiver share the process",
                     subject_detail=summaries["cloudbuffer"], baseline_detail=summaries["node peer"],
                     p50=[median([s["p50_ms"] for s in summaries[k]]) for k in ("cloudbuffer", "node peer")],
                     p95=[median([s["p95_ms"] for s in summaries[k]]) for k in ("cloudbuffer", "node peer")],
                     max=[median([s["max_ms"] for s in summaries[k]]) for k in ("cloudbuffer", "node peer")])
        if self.wanted("6"):
            subject = median([s["p99_ms"] for s in summaries["loaded"]])
            baseline = median([s["p99_ms"] for s in summaries["rest"]])
            self.add("6", "interference: push p99 during two uploads", "p99", "ms", subject, baseline,
                     "≤ 1.5× at rest", subject <= 1.5 * baseline,
                     {"subject": [s["p99_ms"] for s in summaries["loaded"]],
                      "baseline": [s["p99_ms"] for s in summaries["rest"]]},
                     how=f"{how}; two concurrent {self.p.transfer_bytes // MIB} MiB raw uploads vs "
                         f"{p.rest_seconds:g} s at rest just before",
                     subject_detail=summaries["loaded"], baseline_detail=summaries["rest"])

    # -- #2 fan-out capacity --------------------------------------------------

    async def _ramp(self, stack) -> dict:
        p = self.p
        if p.restart:
            await asyncio.to_thread(stack.restart)
        probes = await open_probes(stack.probe_targets(p.probes))
        driver = Driver(probes)
        steps = []
        capacity = 0
        reason = f"reached the ramp's end ({p.ramp_max:,})"
        try:
            while self.pool.size < p.ramp_max:
                added = await self.pool.add(stack.pool_targets(self.pool.size, p.ramp_step))
                if added["failed"]:
                    reason = f"{added['failed']} connections failed at {self.pool.size:,}: {added['errors'][:2]}"
                    break
                await asyncio.sleep(min(p.settle, 1.0))
                p95s = []
                for _ in range(3):  # a miss is confirmed by the median of three windows
                    hist = await driver.run(p.ramp_rate, Histogram(), p.ramp_seconds)
                    p95s.append(hist.quantile(0.95))
                    if len(p95s) == 1 and p95s[0] <= p.ramp_p95:
                        break
                p95 = median(p95s)
                steps.append({"sockets": self.pool.size, "p95_ms": p95 * 1e3, "windows": len(p95s),
                              "connect_seconds": added["seconds"]})
                self.log(f"#2 {stack.name}: {self.pool.size:,} sockets, p95 {p95 * 1e3:.1f} ms")
                if p95 > p.ramp_p95:
                    reason = f"p95 {p95 * 1e3:.0f} ms > {p.ramp_p95 * 1e3:.0f} ms at {self.pool.size:,}"
                    break
                capacity = self.pool.size
        finally:
            await driver.close()
            await self.pool.close()
        return {"capacity": capacity, "reached_end": capacity >= p.ramp_max, "reason": reason, "steps": steps}

    async def bench_capacity(self) -> None:
        p = self.p
        self.log("#2 fan-out capacity")
        subject = await self._ramp(self.cb)
        baseline = await self._ramp(self.base)
        s, b = subject["capacity"], baseline["capacity"]
        # A ramp that hit its end without a miss has a capacity of at least that.
        ok_ratio = s >= 0.7 * b or subject["reached_end"]
        self.add("2", "fan-out capacity", "idle sockets with p95 ≤ 250 ms", "sockets", s, b,
                 f"≥ 0.7× baseline and ≥ {min(10000, p.ramp_max):,}", ok_ratio and s >= min(10000, p.ramp_max),
                 {"subject": [s], "baseline": [b]},
                 how=f"+{p.ramp_step} idle sockets per step, {p.ramp_rate:g} changes/s through {p.probes} probe "
                     f"users, {p.ramp_seconds:g} s windows (a miss confirmed by the median of 3); the ramp "
                     f"stops at {p.ramp_max:,}",
                 subject_detail=subject, baseline_detail=baseline)

    # -- #7 text posts per second --------------------------------------------

    def _post_headers(self, data_type: str | None = "text") -> dict[str, str]:
        headers = {"Authorization": self.cb.auth_header("poster"), "Content-Type": "text/plain; charset=utf-8"}
        if data_type:
            headers["X-Data-Type"] = data_type
        return headers

    def _listener(self, device: str):
        return f"ws://127.0.0.1:{self.cb.port}/ws", {"Authorization": self.cb.auth_header(device)}

    async def _listeners(self) -> list:
        """The poster's two other devices, each on its own worker, so every
        post is delivered by both workers (what #7 measures)."""
        first, node = await open_socket(self._listener("listener 1"))
        return [first, await open_elsewhere(self._listener("listener 2"), node)]

    async def bench_posts(self) -> None:
        p = self.p
        sockets = await self._listeners()
        received = [0, 0]

        def count(index: int, raw: str) -> None:
            if raw.startswith('{"type":"buffer"'):
                received[index] += 1

        counters = [asyncio.create_task(drain(ws, partial(count, i))) for i, ws in enumerate(sockets)]
        posts, health = [], []
        try:
            for rep in range(p.reps):
                self.log(f"#7 posts rep {rep + 1}/{p.reps}")
                posts.append(await http.request_rate(self.cb.port, "POST", "/file/buffer", self._post_headers(),
                                                     POST_TEXT, 201, p.posts_connections, p.posts_seconds))
                health.append(await http.request_rate(self.cb.port, "GET", "/healthz", {}, b"", 200,
                                                      p.posts_connections, p.posts_seconds))
            await asyncio.sleep(1.0)
        finally:
            for task in counters:
                task.cancel()
            await asyncio.gather(*counters, return_exceptions=True)
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        stages = await self._post_stages()
        subject = median([r["per_second"] for r in posts])
        baseline = median([r["per_second"] for r in health])
        total_posts = sum(r["requests"] for r in posts)
        self.add("7", "text posts/s (1 KiB, 2 devices listening)", "requests/s", "req/s", subject, baseline,
                 "≥ 0.5× /healthz", subject >= 0.5 * baseline,
                 {"subject": [r["per_second"] for r in posts], "baseline": [r["per_second"] for r in health]},
                 how=f"{p.posts_connections} keep-alive connections, each sending its next request when the "
                     f"answer arrived, {p.posts_seconds:g} s per repetition, the two listening devices on "
                     f"different workers; baseline: GET /healthz, same way",
                 delivered=received, posted=total_posts,
                 errors=[sum(r["errors"] for r in posts), sum(r["errors"] for r in health)], stages=stages)
        await self._posts_against_peer(posts, stages)

    async def _posts_against_peer(self, posts: list[dict], stages: list[dict]) -> None:
        """#7 on the Node peer: the same posts, two devices listening, its
        posts/s and its server CPU per post next to ours."""
        p, peer = self.p, self.peer
        target = lambda: (f"ws://127.0.0.1:{peer.port}/ws", {"Authorization": peer.auth_header("listener")})
        sockets = [(await open_socket(target()))[0] for _ in range(2)]
        received = [0, 0]

        def count(index: int, raw: str) -> None:
            if raw.startswith('{"type":"buffer"'):
                received[index] += 1

        counters = [asyncio.create_task(drain(ws, partial(count, i))) for i, ws in enumerate(sockets)]
        headers = {"Authorization": peer.auth_header("poster"), "Content-Type": "text/plain; charset=utf-8",
                   "X-Data-Type": "text"}
        runs = []
        try:
            for rep in range(p.reps):
                self.log(f"#7 Node peer rep {rep + 1}/{p.reps}")
                runs.append(await self._server_cpu(
                    lambda: http.request_rate(peer.port, "POST", "/file/buffer", headers, POST_TEXT, 201,
                                              p.posts_connections, p.posts_seconds), peer))
            await asyncio.sleep(0.5)
        finally:
            for task in counters:
                task.cancel()
            await asyncio.gather(*counters, return_exceptions=True)
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        ours = stages[-1]  # the stage table's text post with two devices listening
        self.add("7", "text posts/s (1 KiB, 2 devices listening), against the Node peer", "requests/s", "req/s",
                 median([r["per_second"] for r in posts]), median([r["per_second"] for r in runs]),
                 "for comparison (issue 15)", None,
                 {"subject": [r["per_second"] for r in posts], "baseline": [r["per_second"] for r in runs]},
                 peer="node",
                 how=f"as #7 above, against bench/node_peer/server.js (Node.js, `ws`, one process, in memory: "
                     f"nothing stored, no Redis); server CPU per post, ours (the stage table) "
                     f"{ours['total']:.3f} ms against the peer's {median([r['total'] for r in runs]):.3f} ms",
                 cpu_per_post_ms=[ours["total"], median([r["total"] for r in runs])],
                 delivered=received, errors=[0, sum(r["errors"] for r in runs)])

    async def _server_cpu(self, request, stack=None) -> dict[str, float]:
        """Run `request()` (a request_rate call) and read what the server core's
        processes spent on it, per request, in ms: the workers' event loops,
        their other threads, and redis-server (if the stack has one)."""
        stack = stack or self.cb
        workers, redis_pid = stack.worker_pids(), stack.redis_pid

        def snapshot() -> list[float]:
            loops = others = 0.0
            for pid in workers:
                main, rest = cpu_seconds(pid)
                loops, others = loops + main, others + rest
            return [loops, others, sum(cpu_seconds(redis_pid)) if redis_pid else 0.0]

        before = snapshot()
        result = await request()
        # Rounded: clock ticks summed as floats can leave a -1e-17 for an idle process.
        spent = [round(after - start, 6) for after, start in zip(snapshot(), before)]
        per = 1000 / max(result["requests"], 1)
        return {"per_second": result["per_second"], "errors": result["errors"], "loops": spent[0] * per,
                "other_threads": spent[1] * per, "redis": spent[2] * per, "total": sum(spent) * per}

    async def _post_stages(self) -> list[dict]:
        """#7 taken apart: the server core's CPU per request for a /healthz, a
        post refused right after authentication, and a text post with none,
        one and two devices listening -- what each step of a post adds."""
        p = self.p
        port, connections, seconds = self.cb.port, p.posts_connections, p.posts_seconds
        def post(headers: dict[str, str], expect: int):
            return lambda: http.request_rate(port, "POST", "/file/buffer", headers, POST_TEXT, expect, connections,
                                             seconds)

        stages = [  # (name, devices listening, the requests)
            ("GET /healthz", 0,
             lambda: http.request_rate(port, "GET", "/healthz", {}, b"", 200, connections, seconds)),
            ("post refused after authentication (400, no X-Data-Type)", 0, post(self._post_headers(None), 400)),
            ("text post, no device listening", 0, post(self._post_headers(), 201)),
            ("text post, one device listening", 1, post(self._post_headers(), 201)),
            ("text post, two devices (on different workers) listening", 2, post(self._post_headers(), 201)),
        ]
        measured: dict[str, list[dict]] = {name: [] for name, _, _ in stages}
        for rep in range(p.reps):
            self.log(f"#7 stages rep {rep + 1}/{p.reps}")
            sockets, node = [], ""
            try:
                for name, listening, request in stages:
                    if listening >= 1 and not sockets:
                        first, node = await open_socket(self._listener("listener 1"))
                        sockets.append(first)
                    if listening == 2 and len(sockets) == 1:
                        sockets.append(await open_elsewhere(self._listener("listener 2"), node))
                    drains = [asyncio.create_task(drain(ws)) for ws in sockets]
                    measured[name].append(await self._server_cpu(request))
                    for task in drains:
                        task.cancel()
                    await asyncio.gather(*drains, return_exceptions=True)
            finally:
                await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        health = median([m["total"] for m in measured["GET /healthz"]])
        return [{"stage": name, "errors": sum(m["errors"] for m in runs),
                 **{key: median([m[key] for m in runs])
                    for key in ("per_second", "loops", "other_threads", "redis", "total")},
                 "vs_healthz": ratio(median([m["total"] for m in runs]), health)}
                for name, runs in measured.items()]

    # -- #4 uploads, #5 downloads ----------------------------------------------

    def _upload_raw(self, name: str) -> tuple[int, bytes, float]:
        return http.upload(self.cb.port, "/file/buffer",
                           {"Authorization": self.cb.auth_header("uploader"), "X-Data-Type": "file",
                            "X-File-Name": name, "Content-Type": "application/octet-stream"},
                           self.p.transfer_bytes, self.block)

    def _upload_multipart(self) -> tuple[int, bytes, float]:
        boundary = "----cloudbufferbench" + os.urandom(8).hex()
        prefix = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.bin\"\r\n"
                  f"Content-Type: application/octet-stream\r\n\r\n").encode()
        suffix = f"\r\n--{boundary}--\r\n".encode()
        return http.upload(self.cb.port, "/file/load",
                           {"Authorization": self.cb.auth_header("uploader"), "Accept": "application/json",
                            "Content-Type": f"multipart/form-data; boundary={boundary}"},
                           self.p.transfer_bytes, self.block, prefix, suffix)

    def _dd(self) -> float:
        target = self.cb.data_dir / "dd-bench.bin"
        count = self.p.transfer_bytes // MIB
        started = time.perf_counter()
        subprocess.run(self.pinning.server_command(
            ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={count}", "conv=fsync"]),
            check=True, capture_output=True, timeout=600)
        elapsed = time.perf_counter() - started
        target.unlink()
        return elapsed

    def _with_peak_rss(self, action):
        """Run action() and report the largest RSS growth of any worker above
        its RSS before (VmHWM reset first; sampled as well, in case it cannot be)."""
        pids = self.cb.worker_pids()
        before = {pid: rss_bytes([pid]) for pid in pids}
        reset = all(reset_peak_rss(pid) for pid in pids)
        peak = dict(before)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                for pid in pids:
                    peak[pid] = max(peak[pid], rss_bytes([pid]))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            result = action()
        finally:
            done.set()
            sampler.join()
        if reset:
            for pid in pids:
                peak[pid] = max(peak[pid], peak_rss_bytes(pid))
        growth = max(peak[pid] - before[pid] for pid in pids)
        return result, growth

    async def bench_upload(self) -> None:
        p = self.p
        runs: dict[str, list[float]] = {"dd": [], "raw": [], "multipart": []}
        growth: dict[str, list[float]] = {"raw": [], "multipart": []}
        size_mb = p.transfer_bytes / 1e6
        for rep in range(p.reps):
            self.log(f"#4 upload rep {rep + 1}/{p.reps}")
            runs["dd"].append(size_mb / await asyncio.to_thread(self._dd))
            for kind, action in (("raw", lambda: self._upload_raw("bench.bin")), ("multipart", self._upload_multipart)):
                (status, body, seconds), grew = await asyncio.to_thread(self._with_peak_rss, action)
                if status != 201:
                    raise RuntimeError(f"{kind} upload answered {status}: {body[:300]!r}")
                if kind == "multipart":
                    self.share_token = json.loads(body)["token"]
                runs[kind].append(size_mb / seconds)
                growth[kind].append(grew / MIB)
        dd = median(runs["dd"])
        for kind, path in (("raw", "POST /file/buffer (raw)"), ("multipart", "POST /file/load (multipart)")):
            subject = median(runs[kind])
            peak = max(growth[kind])
            self.add("4", f"upload {p.transfer_bytes // MIB} MiB: {path}", "throughput", "MB/s", subject, dd,
                     "≥ 0.8× dd; peak RSS growth ≤ 64 MiB", subject >= 0.8 * dd and peak <= 64,
                     {"subject": runs[kind], "baseline": runs["dd"]}, peak_rss_growth_mib=peak,
                     rss_growth_reps_mib=growth[kind],
                     how="one connection, 1 MiB sends of incompressible data; the server fsyncs before it "
                         "answers; baseline: dd if=/dev/zero bs=1M conv=fsync into the same data dir")

    async def bench_tus(self) -> None:
        """#8: a resumable upload in 8 MiB PATCHes against the raw POST of the
        same bytes, alternating in the same run; and what a resume costs."""
        p = self.p
        auth = self.cb.auth_header("uploader")
        piece = min(8 * MIB, p.transfer_bytes)
        runs: dict[str, list[float]] = {"subject": [], "baseline": []}
        resumes: list[float] = []
        size_mb = p.transfer_bytes / 1e6
        for rep in range(p.reps):
            self.log(f"#8 tus upload rep {rep + 1}/{p.reps}")
            status, body, seconds = await asyncio.to_thread(self._upload_raw, "raw-vs-tus.bin")
            if status != 201:
                raise RuntimeError(f"raw upload answered {status}: {body[:300]!r}")
            runs["baseline"].append(size_mb / seconds)
            seconds = await asyncio.to_thread(tus.upload, self.cb.port, auth, p.transfer_bytes, self.block, piece,
                                              "tus.bin")
            runs["subject"].append(size_mb / seconds)
            resumes.append(1000 * await asyncio.to_thread(tus.resume_cost, self.cb.port, auth, 4 * piece,
                                                          self.block, 2 * piece + 12345, "resume.bin"))
        subject, baseline = median(runs["subject"]), median(runs["baseline"])
        self.add("8", f"tus upload {p.transfer_bytes // MIB} MiB in {piece // MIB} MiB PATCHes", "throughput",
                 "MB/s", subject, baseline, "≥ 0.8× raw POST /file/buffer", subject >= 0.8 * baseline, runs,
                 resume_ms=resumes, resume_ms_median=median(resumes),
                 how="one keep-alive connection: the creation, then PATCHes of 8 MiB of incompressible data, "
                     "each fsynced and recorded before its answer, the last one finishing the upload into the "
                     "buffer; baseline: the same bytes as one raw POST /file/buffer, alternating. Resume cost: "
                     "a PATCH cut off after 16 MiB, then a new connection's HEAD and a 64 KiB PATCH at the "
                     "server's offset, until its answer (median "
                     + ", ".join(f"{ms:.1f}" for ms in resumes) + " ms)")

    async def bench_download(self) -> None:
        p = self.p
        if self.share_token is None:
            raise RuntimeError("#5 needs the file uploaded by #4")
        files = sorted((self.cb.data_dir / "files").iterdir(), key=lambda f: f.stat().st_mtime)
        path = next(f for f in reversed(files) if f.stat().st_size == p.transfer_bytes)
        sendfile = await asyncio.to_thread(SendfileServer, self.workdir, self.pinning, path)
        target = f"/file/get?token={self.share_token}"
        runs: dict[str, list[float]] = {"subject": [], "baseline": []}
        try:
            for port, where in ((self.cb.port, target), (sendfile.port, "/")):  # warm the page cache
                await asyncio.to_thread(http.download, port, where)
            for rep in range(p.reps):
                self.log(f"#5 download rep {rep + 1}/{p.reps}")
                for key, port, where in (("subject", self.cb.port, target), ("baseline", sendfile.port, "/")):
                    status, size, seconds = await asyncio.to_thread(http.download, port, where)
                    if status != 200 or size != p.transfer_bytes:
                        raise RuntimeError(f"download from {key} answered {status} with {size} bytes")
                    runs[key].append(size / 1e6 / seconds)
        finally:
            await asyncio.to_thread(sendfile.stop)
        subject, baseline = median(runs["subject"]), median(runs["baseline"])
        self.add("5", f"download {p.transfer_bytes // MIB} MiB via /file/get", "throughput", "MB/s", subject,
                 baseline, "≥ 0.7× sendfile", subject >= 0.7 * baseline, runs,
                 how="one connection, recv_into a 4 MiB buffer; baseline: raw asyncio loop.sendfile of the same "
                     "file (page cache warm for both)")


def profile_json(profile: Profile) -> dict:
    return asdict(profile)
