"""Measuring helpers for ``tools.bench``: CPU meters, SQL statement timers, phase timers, profiles."""

from __future__ import annotations

import contextlib
import cProfile
import io
import math
import os
import pstats
import sys
import sysconfig
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

WATCHED_PIDS: dict[str, int] = {}
"""Other processes (e.g. the broker) whose CPU every :class:`Meter` reports."""


def _system_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat (None off Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # The fields after "(command)": [0] is field 3 (state), [1] the parent pid, [11..14] are fields
    # 14-17: utime, stime and the CPU of reaped children (cutime, cstime).
    return stat.rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of process ``pid`` and its descendants, live or exited (None when unavailable).

    Live children are summed from /proc; exited ones are in the parent's cutime/cstime. For a
    PostgreSQL postmaster this is the whole server, backends included.
    """
    own = _stat_fields(pid)
    if own is None:
        return None
    ticks = sum(int(x) for x in own[11:15])
    parent = str(pid)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or entry == parent:
            continue
        fields = _stat_fields(entry)
        if fields is not None and fields[1] == parent:
            ticks += sum(int(x) for x in fields[11:15])
    return ticks / _CLK_TCK


@dataclass
class Meter:
    """Wall time of a phase, the CPU this process used and how busy the whole machine was."""

    started: float = 0.0
    wall_s: float = 0.0
    process_cpu_pct: float = 0.0
    machine_busy_pct: float | None = None
    other_pids: dict[str, int] = field(default_factory=lambda: dict(WATCHED_PIDS))
    other_cpu_pct: dict[str, float] = field(default_factory=dict)
    _cpu0: float = 0.0
    _sys0: tuple[int, int] | None = None
    _other0: dict[str, float] = field(default_factory=dict)

    def start(self) -> Meter:
        self._sys0 = _system_jiffies()
        self._cpu0 = time.process_time()
        self._other0 = {}
        for name, pid in self.other_pids.items():
            cpu = process_cpu_seconds(pid)
            if cpu is not None:
                self._other0[name] = cpu
        self.started = time.perf_counter()
        return self

    def stop(self) -> Meter:
        self.wall_s = time.perf_counter() - self.started
        wall = max(self.wall_s, 1e-9)
        self.process_cpu_pct = 100.0 * (time.process_time() - self._cpu0) / wall
        end = _system_jiffies()
        if self._sys0 is not None and end is not None and end[1] > self._sys0[1]:
            self.machine_busy_pct = 100.0 * (end[0] - self._sys0[0]) / (end[1] - self._sys0[1])
        for name, cpu0 in self._other0.items():
            cpu = process_cpu_seconds(self.other_pids[name])
            if cpu is not None:
                self.other_cpu_pct[name] = 100.0 * (cpu - cpu0) / wall
        return self

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def _statement_kind(sql: str) -> str:
    if sql.lstrip()[:4].upper() == "WITH":
        # Data-modifying CTEs: named after the last table inserted into (the statement's own target).
        tables = sql.replace("(", " ").split()
        targets = [tables[i + 2] for i, w in enumerate(tables[:-2]) if w.upper() == "INSERT"]
        if targets:
            return f"with {targets[-1].strip(chr(34)).lower()}"
    words = sql[:400].replace("(", " ").split()
    if not words:
        return "?"
    verb = words[0].upper()
    upper = [w.upper() for w in words]
    table = ""
    if verb == "INSERT" and len(words) > 2:
        table = words[2]
    elif verb == "UPDATE" and len(words) > 1:
        table = words[1]
    elif "FROM" in upper and upper.index("FROM") + 1 < len(words):
        table = words[upper.index("FROM") + 1]
    return f"{verb.lower()} {table.strip(chr(34)).lower()}".strip()


class SqlTimer:
    """Wall time spent in each kind of SQL statement (verb and table), via SQLAlchemy cursor events.

    The asyncpg adapter awaits inside ``cursor.execute``, so the time includes the round trip and
    whatever other tasks ran on the event loop meanwhile.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.sync_engine
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        event.listen(self._engine, "before_cursor_execute", self._before)
        event.listen(self._engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, _cursor: Any, _statement: str, _params: Any, _ctx: Any, _many: bool) -> None:
        conn.info["bench_sql_t0"] = time.perf_counter()

    def _after(self, conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, _many: bool) -> None:
        t0 = conn.info.pop("bench_sql_t0", None)
        if t0 is None:
            return
        kind = _statement_kind(statement)
        self.seconds[kind] += time.perf_counter() - t0
        self.calls[kind] += 1

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._before)
        event.remove(self._engine, "after_cursor_execute", self._after)


class PhaseTimer:
    """Accumulates the wall time of awaited calls, wrapped per instance (per batch, not per message)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, obj: Any, method: str, label: str | None = None) -> bool:
        """Time ``obj.method`` (an async method) under ``label``; False when it does not exist."""
        original = getattr(obj, method, None)
        if original is None or not callable(original):
            return False
        key = label or method
        setattr(obj, method, self.timed(original, key))
        return True

    def timed(self, fn: Callable[..., Awaitable[Any]], key: str) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - t0
                self.calls[key] += 1

        return wrapper

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


_PATH_PREFIXES = sorted(
    {p for p in (sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("stdlib")) if p}
    | {p for p in sys.path if p.endswith("site-packages")},
    key=len,
    reverse=True,
)


def _shorten_paths(text: str, root: Path) -> str:
    for prefix in _PATH_PREFIXES:
        text = text.replace(prefix + os.sep, "")
    return text.replace(str(root) + os.sep, "")


@contextlib.contextmanager
def profiled(enabled: bool) -> Iterator[cProfile.Profile | None]:
    """cProfile everything running in this thread (the event loop and its tasks) while enabled.

    The timer is this process's CPU time, not wall time: on a shared machine, time the process spends
    preempted would otherwise be charged to whatever function happened to be running.
    """
    if not enabled:
        yield None
        return
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    try:
        yield prof
    finally:
        prof.disable()


def _package(filename: str, root: Path) -> str:
    """The package a profiled function belongs to: a dependency, a platform package, or the stdlib."""
    if filename == "~" or filename.startswith("<"):
        return "(C builtins and methods)"
    if "site-packages" + os.sep in filename:
        return filename.split("site-packages" + os.sep, 1)[1].split(os.sep, 1)[0].removesuffix(".py")
    if filename.startswith(str(root) + os.sep):
        parts = Path(filename).relative_to(root).parts
        if "mpp" in parts and parts.index("mpp") + 1 < len(parts):
            return "mpp." + parts[parts.index("mpp") + 1].removesuffix(".py")
        return parts[0]
    for prefix in _PATH_PREFIXES:
        if filename.startswith(prefix + os.sep):
            return "stdlib " + filename[len(prefix) + 1 :].split(os.sep, 1)[0].removesuffix(".py")
    return filename


def profile_report(
    prof: cProfile.Profile | str, *, title: str, wall_s: float, cpu_s: float, root: Path, top: int = 40
) -> tuple[str, dict[str, Any]]:
    """A text report (own time by package, by function, cumulative) and a summary for the JSON."""
    stats = pstats.Stats(prof, stream=io.StringIO())
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    by_package: dict[str, float] = defaultdict(float)
    for fn, v in raw.items():
        by_package[_package(fn[0], root)] += v[2]
    packages = sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)
    out = io.StringIO()
    out.write(
        f"# {title}\n# wall {wall_s:.2f} s, profiled process's CPU {cpu_s:.2f} s (under cProfile, which "
        f"slows it down); times below are CPU seconds of the profiled thread, {total:.2f} s in all\n\n"
    )
    out.write("## own time by package\n")
    for name, secs in packages:
        if secs / total >= 0.002:
            out.write(f"  {100 * secs / total:5.1f}%  {secs:8.3f} s  {name}\n")
    stats.stream = out  # type: ignore[attr-defined]
    out.write("\n## by own time (tottime)\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write(
        "\n## by cumulative time (unreliable for coroutines and greenlet switches: a resumed coroutine"
        " counts as a new call, and totals can exceed the run)\n"
    )
    stats.sort_stats("cumulative").print_stats(top)
    text = _shorten_paths(out.getvalue(), root)
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    summary = {
        "profiled_cpu_s": round(total, 3),
        "own_time_by_package": [
            {"package": name, "own_s": round(secs, 3), "own_pct": round(100.0 * secs / total, 1)}
            for name, secs in packages[:12]
        ],
        "top_own_time": [
            {
                "function": _shorten_paths(f"{fn[0]}:{fn[1]}({fn[2]})", root),
                "calls": int(v[1]),
                "own_s": round(v[2], 4),
                "own_pct": round(100.0 * v[2] / total, 1),
            }
            for fn, v in rows
        ],
    }
    return text, summary


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` on this machine (None when it cannot be seen).

    Reads /proc/net/tcp{,6} for the listening socket's inode and finds the process holding it; lets the
    bench report the CPU of a broker or database it did not start.
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    # cols[1] is local "ADDR:PORT" in hex, cols[3] the state (0A = LISTEN), cols[9] the inode.
                    if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(cols[9])
        except OSError:
            continue
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") in wanted:
                    return int(entry)
            except OSError:
                continue
    return None
