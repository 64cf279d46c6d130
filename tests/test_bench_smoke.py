"""The benchmarks still run: every one of the seven, tiny and for about a
second, against the real server and the baselines (bench/, `make bench`).

No timing is asserted -- a test machine's speed says nothing -- only that each
benchmark produced its figures and that they are sane.
"""
from __future__ import annotations

import asyncio
import json
import math

from bench import report
from bench.__main__ import run_suite
from bench.system import Pinning


def test_every_benchmark_produces_sane_figures(tmp_path):
    run = asyncio.run(run_suite("smoke", None, tmp_path, Pinning(enable=False), logger=lambda message: None))
    results = run["results"]
    assert sorted({r["id"] for r in results}, key=int) == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]
    by_id, against_peer = {}, {}
    for r in results:
        if r.get("peer") == "node":  # issue 15's Node.js peer: a comparison, no target
            against_peer[r["id"]] = r
            assert r["pass"] is None and r["target"]
        elif r["id"] == "11":  # the shared engines: a cost to explain, no target
            by_id.setdefault("11", []).append(r)
            assert r["pass"] is None and r["target"]
        else:
            by_id.setdefault(r["id"], []).append(r)
            assert isinstance(r["pass"], bool) and r["target"]
        assert not math.isnan(r["subject"]) and not math.isnan(r["baseline"]), r["name"]
    assert sorted(against_peer) == ["1", "7"]
    assert all(d["lost"] == 0 and d["count"] > 0 for d in against_peer["1"]["baseline_detail"])
    assert against_peer["7"]["baseline"] > 0 and against_peer["7"]["errors"] == [0, 0]
    assert all(n > 0 for n in against_peer["7"]["delivered"]) and all(
        cpu > 0 for cpu in against_peer["7"]["cpu_per_post_ms"])

    for number in ("1", "6"):  # latencies: every change arrived, so p99 is finite
        (r,) = by_id[number]
        assert 0 < r["subject"] < math.inf and 0 < r["baseline"] < math.inf
        assert all(d["lost"] == 0 and d["count"] > 0 for d in r["subject_detail"] + r["baseline_detail"])
    (capacity,) = by_id["2"]  # the smoke ramp: up to 2 steps of 10 sockets
    for side in ("subject_detail", "baseline_detail"):
        steps = capacity[side]["steps"]
        assert steps and all(step["sockets"] in (10, 20) for step in steps)
        assert capacity[side]["capacity"] in (0, 10, 20)
    assert len(by_id["3"]) == 2  # without and with a permessage-deflate offer
    for r in by_id["3"]:
        assert all(rep["rss_high"] > 0 and rep["rss_low"] > 0 for rep in r["raw"] + r["raw_baseline"])
    assert len(by_id["4"]) == 2  # raw and multipart
    for r in by_id["4"] + by_id["5"]:
        assert r["subject"] > 0 and r["baseline"] > 0
    for r in by_id["4"]:
        assert r["peak_rss_growth_mib"] >= 0
    (resumable,) = by_id["8"]  # tus against the raw POST, and the resume's cost
    assert resumable["subject"] > 0 and resumable["baseline"] > 0
    assert len(resumable["resume_ms"]) == 1 and 0 < resumable["resume_ms_median"] < math.inf
    (posts,) = by_id["7"]
    assert posts["subject"] > 0 and posts["baseline"] > 0 and posts["errors"] == [0, 0]
    assert posts["delivered"][0] > 0 and posts["delivered"][1] > 0
    stages = {stage["stage"]: stage for stage in posts["stages"]}
    assert len(stages) == 5 and all(stage["errors"] == 0 and stage["per_second"] > 0 for stage in stages.values())
    assert stages["GET /healthz"]["vs_healthz"] == 1.0 and all(math.isfinite(s["vs_healthz"]) for s in stages.values())

    (encrypted_upload,) = by_id["9"]  # real Chromium, both accounts
    assert encrypted_upload["subject"] > 0 and encrypted_upload["baseline"] > 0
    assert all(len(seconds) == 1 for seconds in encrypted_upload["reps"].values())
    assert [r["metric"] for r in by_id["10"]] == ["p50", "p95"]
    assert all(0 < r["subject"] < math.inf and 0 < r["baseline"] < math.inf for r in by_id["10"])

    # PostgreSQL against SQLite, S3 against the local disk, every pair measured on both sides.
    assert [r["name"].split(":")[0] for r in by_id["11"]] == [
        "#1 on PostgreSQL", "#1 on PostgreSQL", "#4 on S3", "#5 on S3", "#7 on PostgreSQL"]
    assert all(0 < r["subject"] < math.inf and 0 < r["baseline"] < math.inf for r in by_id["11"])

    assert "## Results" in report.markdown(run) and "Where a text post's server time goes" in report.markdown(run)
    assert "push latency" in report.table(results)
    report.write_json(run, tmp_path / "out.json")
    assert len(json.loads((tmp_path / "out.json").read_text())["results"]) == len(results)
