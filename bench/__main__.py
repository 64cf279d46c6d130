"""`python -m bench [--quick]`: run the benchmarks, print the table, write the results.

A full run writes docs/benchmarks.md and docs/benchmarks.json (committed) and
bench/results/<time>.json; --quick and --only runs write only under
bench/results/ unless --docs is given.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench import report
from bench.suite import PROFILES, Suite, profile_json
from bench.system import Pinning, machine, raise_nofile_limit, versions

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def run_suite(profile_name: str, only: set[str] | None, workdir: Path, pinning: Pinning,
                    logger=log, disabled_patches: str = "") -> dict:
    profile = PROFILES[profile_name]
    started = time.time()
    load_before = os.getloadavg()
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(RuntimeError, ValueError):  # not in the main thread (tests)
        loop.add_signal_handler(signal.SIGTERM, task.cancel)  # stop cleanly: servers and holders too
    server_env = {"CLOUDBUFFER_DISABLED_PATCHES": disabled_patches} if disabled_patches else None
    results = await Suite(profile, workdir, pinning, only, logger, server_env).run()
    return {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "seconds": time.time() - started,
        "profile": profile_json(profile),
        "machine": machine(),
        "versions": versions(),
        "pinning": pinning.describe(),
        "disabled_patches": disabled_patches,
        # Other work on the machine shows here; the ratios hold better than the absolute figures.
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="CloudBuffer benchmarks (issue 5).")
    parser.add_argument("--quick", action="store_true", help="smaller and shorter: about 2 minutes")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="full, quick or smoke (overrides --quick)")
    parser.add_argument("--only", help="comma-separated benchmark numbers, e.g. 1,6")
    parser.add_argument("--docs", action="store_true", help="write docs/benchmarks.md and .json even for a partial run")
    parser.add_argument("--disable-patches", default="", metavar="NAMES",
                        help="run CloudBuffer with these server/patches/ units left off (comma-separated), "
                             "to measure what each buys")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir (logs) for inspection")
    parser.add_argument("--render", metavar="JSON", help="only rewrite docs/benchmarks.md from a results JSON "
                        "(e.g. after editing bench/findings.md)")
    args = parser.parse_args(argv)
    if args.render:
        run = report.read_json(Path(args.render))
        (ROOT / "docs" / "benchmarks.md").write_text(report.markdown(run))
        print(report.table(run["results"]))
        log("wrote docs/benchmarks.md")
        return 0
    profile = args.profile or ("quick" if args.quick else "full")
    only = set(args.only.split(",")) if args.only else None

    raise_nofile_limit()
    pinning = Pinning()
    pinning.pin_self_to_load()
    log(f"profile {profile}; {pinning.describe()}")
    workdir = Path(tempfile.mkdtemp(prefix="cloudbuffer-bench-"))
    try:
        run = asyncio.run(run_suite(profile, only, workdir, pinning, disabled_patches=args.disable_patches))
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(report.table(run["results"]))
    print()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results_json = ROOT / "bench" / "results" / f"{stamp}-{profile}.json"
    report.write_json(run, results_json)
    written = [results_json]
    if args.docs or (profile == "full" and only is None):
        (ROOT / "docs" / "benchmarks.md").write_text(report.markdown(run))
        report.write_json(run, ROOT / "docs" / "benchmarks.json")
        written += [ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "benchmarks.json"]
    else:
        md = ROOT / "bench" / "results" / f"{stamp}-{profile}.md"
        md.write_text(report.markdown(run))
        written.append(md)
    for path in written:
        log(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
