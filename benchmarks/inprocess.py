"""The in-process backend beside APScheduler 3's AsyncIOScheduler, paired in one run.

Run it as ``python benchmarks/inprocess.py [N] [ROUNDS]`` (``tox -e bench`` installs
APScheduler 3). Each measurement runs in a fresh subprocess per library, so that one's
memory and garbage do not weigh on the other; rounds alternate between the libraries so
that the machine's load hits both alike, and every figure is the median of ROUNDS (3).

- schedule: the cost of one ``schedule()`` (``add_job``) call while N tasks are scheduled;
- burst: N tasks due at the same instant, how many complete per second, with an async
  ``run`` (a coroutine job) and a sync one (a plain function job, which APScheduler runs in
  its thread pool);
- lateness: N tasks spread evenly over 2 s, p99 of (start of the run − its due time);
- memory: RSS growth per scheduled task at N tasks;
- logging: the burst again with the logging plugin enabled (its lines go to /dev/null),
  as the time it adds per run: from the two rates, and from the process's CPU time per run
  in the same bursts (which a busy machine disturbs less).

The first due time is far enough ahead (``LEAD``) for each library to build and schedule N
requests on a slow machine. A burst is timed from its due time, or from the end of
scheduling where that came later; a line below the table names any such overrun (the
lateness of a spread scheduled late includes it).

Lamplighter runs with the logging plugin disabled except in the logging row, and with
``max_concurrency=256``. Targets at N = 100 000: schedule ≤ 2.5 µs and ≥ 15x; burst ≥ 10x
(async) and ≥ 8x (sync); lateness p99 ≤ 2 ms (async) and ≤ 5 ms (sync); memory ≤ 400 B
per task; logging ≤ 10 µs per run. The load average is printed before and after.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap

COMMON = """
import asyncio, gc, json, os, statistics, sys, tempfile, time
from datetime import datetime, timedelta, timezone
import psutil
N = int(sys.argv[1])
def rss():
    gc.collect()
    return psutil.Process().memory_info().rss
"""

LAMPLIGHTER = (
    COMMON
    + """
from lamplighter import Lamplighter, Success, TaskRequest
# Seconds from building the requests to the first due time: room for building and
# scheduling N requests on a slow machine (see "overrun" in main()).
LEAD = 2 + N / 10000
done = []
class Async:
    async def run(self, ctx):
        done.append(time.time())
        return Success()
class Sync:
    def run(self, ctx):
        done.append(time.time())
        return Success()
class AsyncLate:
    async def run(self, ctx):
        done.append(time.time() - ctx.scheduled_for.timestamp())
        return Success()
class SyncLate:
    def run(self, ctx):
        done.append(time.time() - ctx.scheduled_for.timestamp())
        return Success()

async def main(mode):
    kind = "sync" if mode.split()[-1] == "sync" else "async"  # "schedule" registers async
    logging = mode.startswith("logging")
    if logging:
        import lamplighter_logging
        lamplighter_logging.configure(output=open(os.devnull, "w"), format="json")
    with tempfile.TemporaryDirectory() as data:
        app = Lamplighter(app_id="com.example.bench", backend="inprocess", data_dir=data,
                          disable_plugins=[] if logging else ["logging"],
                          backend_options={"max_concurrency": 256})
        ids = [f"t{i}" for i in range(N)]
        late = mode.startswith("lateness")
        factory = {("async", False): Async, ("sync", False): Sync,
                   ("async", True): AsyncLate, ("sync", True): SyncLate}[kind, late]
        for tid in ids:
            app.register(tid, factory)
        app.start()
        if mode == "schedule":
            requests = [TaskRequest.one_time(tid, timedelta(hours=1)) for tid in ids]
            before = rss()
            started = time.perf_counter()
            for request in requests:
                app.schedule(request)
            elapsed = time.perf_counter() - started
            grown = rss() - before
            # the requests list is the caller's, not the scheduler's
            result = {"schedule": elapsed / N, "memory": grown / N}
        elif not late:
            due = datetime.now(timezone.utc) + timedelta(seconds=LEAD)
            app.schedule_many([TaskRequest.exact(tid, due) for tid in ids])
            ready = time.time()  # the burst starts when it is due and scheduled
            while time.time() < due.timestamp() - 0.05:
                await asyncio.sleep(0.01)
            cpu = time.process_time()  # every thread's, from just before the burst
            while len(done) < N:
                await asyncio.sleep(0.01)
            cpu = time.process_time() - cpu
            origin = max(due.timestamp(), ready)
            result = {mode: N / (max(done) - origin), mode + " cpu": cpu / N,
                      mode + " overrun": max(ready - due.timestamp(), 0.0)}
        else:
            start = datetime.now(timezone.utc) + timedelta(seconds=LEAD)
            step = 2.0 / N
            app.schedule_many([
                TaskRequest.exact(tid, start + timedelta(seconds=i * step))
                for i, tid in enumerate(ids)
            ])
            ready = time.time()
            while len(done) < N:
                await asyncio.sleep(0.01)
            lateness = sorted(done)
            result = {mode: lateness[int(len(lateness) * 0.99) - 1],
                      mode + " overrun": max(ready - start.timestamp(), 0.0)}
        app.shutdown()
        return result

print(json.dumps(asyncio.run(main(sys.argv[2]))))
"""
)

APSCHEDULER = (
    COMMON
    + """
from apscheduler.schedulers.asyncio import AsyncIOScheduler
LEAD = 2 + N / 4000  # add_job is slower: room to add N jobs (see "overrun" in main())
done = []
async def task(due):
    done.append(time.time() - due)
def sync_task(due):
    done.append(time.time() - due)

async def main(mode):
    scheduler = AsyncIOScheduler(timezone=timezone.utc, job_defaults={"misfire_grace_time": 3600})
    scheduler.start()
    ids = [f"t{i}" for i in range(N)]
    job = sync_task if mode.split()[-1] == "sync" else task
    if mode == "schedule":
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        before = rss()
        started = time.perf_counter()
        for tid in ids:
            scheduler.add_job(task, "date", run_date=later, id=tid, args=(0.0,))
        elapsed = time.perf_counter() - started
        result = {"schedule": elapsed / N, "memory": (rss() - before) / N}
    elif mode.startswith("burst"):
        due = datetime.now(timezone.utc) + timedelta(seconds=LEAD)
        for tid in ids:
            scheduler.add_job(job, "date", run_date=due, id=tid, args=(due.timestamp(),))
        overrun = max(time.time() - due.timestamp(), 0.0)  # the burst starts after both
        while len(done) < N:
            await asyncio.sleep(0.01)
        result = {mode: N / (max(done) - overrun), mode + " overrun": overrun}
    else:
        start = datetime.now(timezone.utc) + timedelta(seconds=LEAD)
        step = 2.0 / N
        for i, tid in enumerate(ids):
            due = start + timedelta(seconds=i * step)
            scheduler.add_job(job, "date", run_date=due, id=tid, args=(due.timestamp(),))
        overrun = max(time.time() - start.timestamp(), 0.0)
        while len(done) < N:
            await asyncio.sleep(0.01)
        late = sorted(done)
        result = {mode: late[int(len(late) * 0.99) - 1], mode + " overrun": overrun}
    scheduler.shutdown(wait=False)
    return result

print(json.dumps(asyncio.run(main(sys.argv[2]))))
"""
)


def _run(script: str, n: int, mode: str) -> dict[str, float] | None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(n), mode],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        print(f"  ({mode} failed: {result.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    data: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


MODES = (
    "schedule",
    "burst async",
    "burst sync",
    "lateness async",
    "lateness sync",
    "logging burst async",
)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    try:
        import apscheduler  # noqa: F401
    except ImportError:
        have_aps = False
        print("(APScheduler 3 is not installed: pip install 'apscheduler<4')")
    else:
        have_aps = True
    load_before = os.getloadavg()
    ours: dict[str, list[float]] = {}
    theirs: dict[str, list[float]] = {}
    for _ in range(rounds):
        for mode in MODES:
            for key, value in (_run(LAMPLIGHTER, n, mode) or {}).items():
                ours.setdefault(key, []).append(value)
            if have_aps and not mode.startswith("logging"):
                for key, value in (_run(APSCHEDULER, n, mode) or {}).items():
                    theirs.setdefault(key, []).append(value)
    load_after = os.getloadavg()
    a = {key: statistics.median(values) for key, values in ours.items()}
    b = {key: statistics.median(values) for key, values in theirs.items()}
    rows = [
        ("schedule() per request", "schedule", 1e6, "µs", "≤ 2.5 µs, ≥ 15x", True),
        ("burst, async run", "burst async", 1, "runs/s", "≥ 10x", False),
        ("burst, sync run", "burst sync", 1, "runs/s", "≥ 8x", False),
        ("lateness p99, async (2 s)", "lateness async", 1e3, "ms", "≤ 2 ms", True),
        ("lateness p99, sync (2 s)", "lateness sync", 1e3, "ms", "≤ 5 ms", True),
        ("RSS per scheduled task", "memory", 1, "bytes", "≤ 400 B", True),
    ]

    def text(value: float | None, scale: float, unit: str) -> str:
        return "-" if value is None else f"{value * scale:,.2f} {unit}"

    def ratio(ours: float | None, theirs: float | None, lower_is_better: bool) -> str:
        if not ours or not theirs:
            return "-"
        return f"{(theirs / ours if lower_is_better else ours / theirs):.1f}x"

    print(
        f"N = {n:,}; median of {rounds} rounds; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after ({os.cpu_count()} CPUs)"
    )
    print(f"{'measure':<28} {'lamplighter':>16} {'APScheduler 3':>16} {'ratio':>7}  target")
    for label, key, scale, unit, target, lower_is_better in rows:
        x, y = a.get(key), b.get(key)
        print(
            f"{label:<28} {text(x, scale, unit):>16} {text(y, scale, unit):>16} "
            f"{ratio(x, y, lower_is_better):>7}  {target}"
        )
    plain, logged = a.get("burst async"), a.get("logging burst async")
    if plain and logged:
        added = (1 / logged - 1 / plain) * 1e6
        print(f"{'logging plugin, per run':<28} {added:>+13.2f} µs {'':>16} {'':>7}  ≤ 10 µs")
    plain, logged = a.get("burst async cpu"), a.get("logging burst async cpu")
    if plain and logged:
        # The process's CPU time per run in the same bursts: a busy machine moves the
        # wall-clock rates a lot, the CPU a run takes much less.
        added = (logged - plain) * 1e6
        label = "  the same, in CPU time"
        print(f"{label:<28} {added:>+13.2f} µs {'':>16} {'':>7}  ≤ 10 µs")
    print("(ratio: how many times better than APScheduler 3, in the same run)")
    # A side still scheduling when its runs came due: its burst is timed from the end of
    # scheduling, but its lateness includes the overrun (LEAD is too short for this machine).
    for side, figures in (("lamplighter", ours), ("APScheduler 3", theirs)):
        for key, values in figures.items():
            if key.endswith(" overrun") and max(values) > 0:
                print(
                    f"({side}, {key[: -len(' overrun')]}: scheduling ended up to "
                    f"{max(values):.2f} s after the first due time)"
                )


if __name__ == "__main__":
    main()
