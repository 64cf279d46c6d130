"""The machine: cores and pinning, file-descriptor limits, process memory, versions.

Everything here reads /proc or calls the standard library; the benchmarks need
no monitoring package.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path


def raise_nofile_limit() -> int:
    """Raise this process's open-file limit to its hard limit (many sockets
    need many descriptors); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def nofile_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Pinning:
    """Which cores the servers and the load generator use. With two or more
    cores they get different ones (server: core 0, load: core 1); with one,
    nothing is pinned."""

    def __init__(self, enable: bool = True) -> None:
        cores = sorted(os.sched_getaffinity(0))
        self.taskset = shutil.which("taskset")
        self.enabled = enable and len(cores) >= 2 and self.taskset is not None
        self.server_cores = str(cores[0]) if self.enabled else None
        self.load_cores = ",".join(str(c) for c in cores[1:]) if self.enabled else None

    def server_command(self, command: list[str]) -> list[str]:
        return [self.taskset, "-c", self.server_cores, *command] if self.enabled else command

    def load_command(self, command: list[str]) -> list[str]:
        return [self.taskset, "-c", self.load_cores, *command] if self.enabled else command

    def pin_self_to_load(self) -> None:
        if self.enabled:
            os.sched_setaffinity(0, {int(c) for c in self.load_cores.split(",")})

    def pin_pid_to_server(self, pid: int) -> None:
        """Pin every thread of a running process (redis-server has background threads)."""
        if not self.enabled:
            return
        cores = {int(self.server_cores)}
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), cores)
            except (ProcessLookupError, PermissionError):
                pass

    def describe(self) -> str:
        if not self.enabled:
            return "not pinned (fewer than 2 cores or no taskset)"
        return f"servers on core {self.server_cores}, load generator on core(s) {self.load_cores} (taskset)"


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_bytes(pids: list[int]) -> int:
    """Resident set size summed over the processes, in bytes."""
    return sum(_status_kib(pid, "VmRSS") for pid in pids) * 1024


def peak_rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmHWM") * 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(stat_path: str) -> int:
    with open(stat_path) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user + system) of a process: its main thread's -- for a
    server worker, the event loop's -- and its other threads' (database,
    uploads), in seconds."""
    main = _cpu_ticks(f"/proc/{pid}/task/{pid}/stat")
    everything = _cpu_ticks(f"/proc/{pid}/stat")
    return main / _TICKS, (everything - main) / _TICKS


def children_of(pid: int) -> list[tuple[int, str]]:
    """Direct children (pid, command line) of a process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append((int(entry.name), cmdline))
        except (OSError, ValueError, IndexError):
            continue
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    found["sqlite"] = sqlite3.sqlite_version  # the library Python's sqlite3 module runs on
    for name in ("quart", "hypercorn", "wsproto", "h11", "redis", "python-multipart", "websockets", "httpx"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "-"
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=5).stdout
        found["redis-server"] = next((w.split("=", 1)[1] for w in out.split() if w.startswith("v=")), out.strip())
    except (OSError, subprocess.SubprocessError):
        found["redis-server"] = "-"
    return found


def machine() -> dict[str, object]:
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "kernel": platform.release(),
        "python_executable": sys.executable,
        "nofile_limit": nofile_limit(),
    }
