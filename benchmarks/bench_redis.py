"""RedisMessageQueue against redis-py's floors, RQ and huey, on one private server, in the same run.

The script starts its own ``redis-server`` (the tests' helper: 127.0.0.1, a free port,
a temporary directory, no AOF unless ``--aof``), pins it to the first CPU and the
clients (this process, its threads, its client processes) to the others, and measures,
interleaved in every repetition, the two sides of each ratio taking turns chunk by chunk
(``_turns.py``) (figures of issue 15, "Performance"):

* one ``add`` vs one unpipelined ``LPUSH`` round trip (target >= 0.6x);
* ``reserve`` + ``ack`` vs a minimal Lua reserve/ack pair (``ZPOPMIN``/``ZADD`` then
  ``ZREM``/``HDEL``, one EVALSHA each; target >= 0.8x);
* ``add_many`` + ``reserve_many`` + ``ack_many`` of 100, per message, vs ``add`` +
  ``reserve`` + ``ack`` of one (target >= 15x, goal 30x);
* 4 client processes cycling add + reserve + ack on one queue vs 1 process (target
  >= 2x), next to the same ratio for ``LPUSH`` + ``RPOP`` (the floor); measured with the
  client processes free to run on every CPU (the server keeps its own) and, as a
  reference, pinned off the server's CPU (on 2 cores all four share one CPU, which caps
  even the floor near 1.5x); each figure counts the cycles every process finished in
  the same time windows (``_redis_procs``), so a straggler never runs alone in it;
* the wake-up of a ``get`` blocked in another client process by an ``add`` from this one,
  vs a ``BLPOP`` woken by an ``LPUSH``, taking turns item by item (median target
  <= 2.5x, goal 1.5x; p99 reported);
* peers, same kind of work: enqueue one no-op (our ``add``) and take-run-settle one (our
  ``reserve`` + ``ack``) against RQ (``Queue.enqueue``, a burst ``SimpleWorker``) and
  huey (calling a task, ``dequeue`` + ``execute``), each noted with its guarantee;
* ``TaskHandler`` over Redis: no-op tasks submitted here, run by a worker-only handler
  in another process (``_redis_handler.py``), vs RQ's ``SimpleWorker`` (target >= 10x)
  and huey's ``dequeue`` + ``execute`` (target >= 1.5x, goal 3x), the same number of
  tasks as huey's.

Ratios are ours / baseline; only ratios within one run count (the machine is shared).
Our rows need ``unidist_queue.RedisMessageQueue``; without it they read ``None`` and
the floors and peers still run. RQ and huey come with the ``bench`` extra; a peer that is
not installed reads ``None``.

Run: ``python benchmarks/bench_redis.py [--repeat 9] [--json [PATH]] [--quick] [--aof]``.
"""

from __future__ import annotations

import pickle
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis
from _harness import Case, body, parser, report, run_cases
from _redis_floors import LIST, LuaPair, lpush_chunk
from _redis_handler import WORKERS, TasksSide
from _redis_peers import HueyPeer, RQPeer, installed, noop
from _redis_procs import WAKE_LIST, WAKE_QUEUE, ClientPool
from _redis_server import INSTALL_HINT, PinnedServer
from _redis_server import installed as server_installed
from _turns import Side, Turns

import unidist_queue

BATCH = 100
PROCESSES = 4
QUEUE = "q"
NAMESPACE = "bench"
# one database per system: ours 0, floors 1, RQ 2, huey 3
OURS_DB, FLOOR_DB, RQ_DB, HUEY_DB = 0, 1, 2, 3

# calls per repetition (in chunks of BATCH, taking turns with the baseline's)
FULL = {"single": 2000, "cycle": 1000, "rounds": 50, "windows": 5, "rq": 200, "huey": 1000,
        "wake": 200}
QUICK = {"single": 100, "cycle": 100, "rounds": 3, "windows": 1, "rq": 20, "huey": 50, "wake": 20}
WINDOW = 0.15  # seconds of one window of the multi-process figures (see _redis_procs)
PACE = 0.003  # seconds between wake-ups: the woken caller is blocked again long before


def p99(values: List[float]) -> float:
    """The 99th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def have_ours() -> bool:
    """Whether this checkout offers ``unidist_queue.RedisMessageQueue``."""
    return hasattr(unidist_queue, "RedisMessageQueue")


# -- our figures ------------------------------------------------------------------------------


class Ours:
    """One :class:`~unidist_queue.RedisMessageQueue` client, open for the whole run; its
    methods time chunks of ``BATCH`` messages (see ``_turns.py``)."""

    def __init__(self, url: str) -> None:
        self.mq: Any = unidist_queue.RedisMessageQueue(url, namespace=NAMESPACE)
        self.mq.clear(QUEUE)
        self.bodies = [body(i) for i in range(BATCH)]

    def add_chunk(self) -> float:
        """``BATCH`` ``add`` calls (the queue grows; :meth:`empty` empties it, untimed)."""
        add = self.mq.add
        t0 = time.perf_counter()
        for b in self.bodies:
            add(QUEUE, b)
        return time.perf_counter() - t0

    def empty(self) -> None:
        self.mq.clear(QUEUE)

    def fill(self, n: int) -> None:
        """``n`` ready messages, untimed (for :meth:`reserve_ack_chunk`)."""
        for start in range(0, n, 1000):
            self.mq.add_many(QUEUE, [body(i) for i in range(start, min(n, start + 1000))])

    def reserve_ack_chunk(self) -> float:
        """``BATCH`` messages taken with ``reserve`` (session lease), run (a no-op) and
        ``ack``ed."""
        reserve, ack = self.mq.reserve, self.mq.ack
        t0 = time.perf_counter()
        for _ in range(BATCH):
            m = reserve(QUEUE, timeout=30.0)
            noop()
            ack(m)
        return time.perf_counter() - t0

    def check_empty(self) -> None:
        assert self.mq.count(QUEUE) == 0 and self.mq.stats(QUEUE).reserved == 0

    def cycle_chunk(self) -> float:
        """``BATCH`` messages through ``add`` + ``reserve`` + ``ack``, one at a time."""
        add, reserve, ack = self.mq.add, self.mq.reserve, self.mq.ack
        t0 = time.perf_counter()
        for b in self.bodies:
            add(QUEUE, b)
            ack(reserve(QUEUE, timeout=30.0))
        return time.perf_counter() - t0

    def batch_chunk(self) -> float:
        """``BATCH`` messages through one ``add_many``, ``reserve_many`` and ``ack_many``."""
        t0 = time.perf_counter()
        self.mq.add_many(QUEUE, self.bodies)
        taken = self.mq.reserve_many(QUEUE, BATCH, timeout=30.0)
        self.mq.ack_many(taken)
        spent = time.perf_counter() - t0
        assert len(taken) == BATCH
        return spent

    def close(self) -> None:
        self.mq.clear(QUEUE)
        self.mq.close()


# -- the run ------------------------------------------------------------------------------------


def row(figure: str, ours: Optional[float], baseline: str, base: Optional[float],
        target: str) -> Dict[str, Any]:
    ratio = ours / base if ours is not None and base is not None else None
    return {"figure": figure, "ours": ours, "baseline": baseline, "baseline figure": base,
            "ratio": ratio, "target": target}


class Run:
    """Everything one run measures against one pinned server; ``cases()`` lists them."""

    def __init__(self, server: PinnedServer, sizes: Dict[str, int]) -> None:
        self.sizes = sizes
        self.payload = pickle.dumps(body(0))
        self.latency: Dict[str, List[float]] = {
            f"{who} {what}": [] for who in ("ours", "BLPOP") for what in ("median", "p99")}
        # the multi-process figures run twice: clients free on every CPU (the server's
        # too), and clients pinned off the server's CPU (on 2 cores: all on one CPU)
        self.layouts = {"all": server.original, "pinned": server.client_cpus}
        self.floor = redis.Redis.from_url(server.url_db(FLOOR_DB))
        self.lua = LuaPair(self.floor, self.payload)
        self.ours: Optional[Ours] = None
        self.rq: Optional[RQPeer] = None
        self.huey: Optional[HueyPeer] = None
        self.pool: Optional[ClientPool] = None
        self.tasks: Optional[TasksSide] = None
        try:
            self.ours = Ours(server.url_db(OURS_DB)) if have_ours() else None
            self.rq = RQPeer(server.url_db(RQ_DB)) if installed("rq") else None
            self.huey = HueyPeer(server.url_db(HUEY_DB)) if installed("huey") else None
            self.pool = ClientPool(PROCESSES, server.url_db(OURS_DB), server.url_db(FLOOR_DB), NAMESPACE,
                                   body(0), with_ours=self.ours is not None)
            if self.ours is not None:
                self.tasks = TasksSide(server.url_db(OURS_DB), NAMESPACE, self.pool, server.client_cpus)
        except BaseException:
            self.close()
            raise

    def cases(self) -> List[Case]:
        """Every case of a repetition, in order (each pair of a ratio in turns)."""
        s, floor, lua, ours = self.sizes, self.floor, self.lua, self.ours
        chunks = s["single"] // BATCH
        lpush = Side("LPUSH", lambda: lpush_chunk(floor, self.payload, BATCH), BATCH, chunks,
                     end=lambda: floor.delete(LIST))
        pair = Side("Lua pair", lambda: lua.chunk(BATCH), BATCH, chunks, begin=lua.fill, end=lua.check)
        if ours is None:
            cases = [*Turns(lpush).cases(), *Turns(pair).cases()]
        else:
            cases = [
                *Turns(Side("add", ours.add_chunk, BATCH, chunks, end=ours.empty), lpush).cases(),
                *Turns(Side("reserve+ack", ours.reserve_ack_chunk, BATCH, chunks, begin=ours.fill,
                            end=ours.check_empty), pair).cases(),
                *Turns(Side("batches", ours.batch_chunk, BATCH, s["rounds"], end=ours.check_empty),
                       Side("cycle", ours.cycle_chunk, BATCH, s["cycle"] // BATCH,
                            end=ours.check_empty)).cases(),
            ]
        return cases + self.process_cases(ours is not None) + self.peer_cases()

    def process_cases(self, with_ours: bool) -> List[Case]:
        """1 and ``PROCESSES`` client processes, ours and the floor, in turns, per layout."""
        pool = self.pool
        assert pool is not None
        kinds = ["floor", "ours"] if with_ours else ["floor"]
        cases: List[Case] = []

        def window(kind: str, k: int, cpus: Set[int]) -> float:
            """The seconds of one window, scaled to BATCH cycles (a Side's chunk)."""
            return WINDOW * BATCH / max(1, pool.window(kind, k, WINDOW, cpus))

        for layout, cpus in self.layouts.items():
            sides = [Side(f"{kind} {k} {layout}", partial(window, kind, k, cpus), BATCH,
                          self.sizes["windows"])
                     for kind in kinds for k in (1, PROCESSES)]
            cases += Turns(*sides).cases()
        cases.append(("wake-up", lambda: self.wake_ups(self.sizes["wake"])))
        return cases

    def peer_cases(self) -> List[Case]:
        s = self.sizes
        cases: List[Case] = []
        for name, peer, n in (("RQ", self.rq, s["rq"]), ("huey", self.huey, s["huey"])):
            if peer is not None:
                cases += [(f"{name} enqueue", lambda p=peer, n=n: p.enqueue_rate(n)),
                          (f"{name} run", lambda p=peer, n=n: p.run_rate(n))]
        if self.tasks is not None:
            cases.append(("tasks", lambda t=self.tasks, n=s["huey"]: t.rate(n)))
        return cases

    def wake_ups(self, n: int) -> float:
        """One repetition of the wake-up figures (a blocking ``get`` in one client process
        and a ``BLPOP`` in another, woken in turns by this process, all off the server's
        CPU): keeps each side's median and p99; returns the floor's median (for
        ``run_cases``). Without our class, the floor alone."""
        assert self.pool is not None
        send_ours = None if self.ours is None else partial(self.ours.mq.add, WAKE_QUEUE)
        ours, floor = self.pool.wake_ups(n, self.layouts["pinned"], PACE, send_ours,
                                         lambda t: self.floor.lpush(WAKE_LIST, repr(t)))
        for name, lat in (("ours", ours), ("BLPOP", floor)):
            if lat:
                self.latency[name + " median"].append(statistics.median(lat))
                self.latency[name + " p99"].append(p99(lat))
        return statistics.median(floor)

    def latencies(self) -> Dict[str, float]:
        """The median over the repetitions of each wake-up figure, in microseconds."""
        return {name: statistics.median(v) * 1e6 for name, v in self.latency.items() if v}

    def close(self) -> None:
        """Close every client and end the client processes (whatever was made)."""
        made = (self.tasks, self.pool, self.ours, self.rq, self.huey)
        closers: List[Callable[[], None]] = [x.close for x in made if x is not None]
        for close in [*closers, self.floor.close]:
            close()


def rows_of(r: Dict[str, float], lat: Dict[str, float]) -> List[Dict[str, Any]]:
    """The table: our figure, its baseline from the same run, the ratio, the target."""
    g, w = r.get, lat.get
    return [
        row("one add, one round trip (msgs/s)", g("add"), "one LPUSH round trip", g("LPUSH"), ">= 0.6x"),
        row("reserve + ack, one message (msgs/s)", g("reserve+ack"),
            "Lua ZPOPMIN/ZADD + ZREM/HDEL pair", g("Lua pair"), ">= 0.8x"),
        row(f"add_many + reserve_many + ack_many of {BATCH}, per message", g("batches"),
            "add + reserve + ack, one message each", g("cycle"), ">= 15x (goal 30x)"),
        row(f"{PROCESSES} processes, one queue, add + reserve + ack (msgs/s)", g(f"ours {PROCESSES} all"),
            "the same, 1 process", g("ours 1 all"), ">= 2x"),
        row(f"  floor: {PROCESSES} processes, LPUSH + RPOP (items/s)", g(f"floor {PROCESSES} all"),
            "the same, 1 process", g("floor 1 all"), "(floor)"),
        row(f"  {PROCESSES} processes, clients off the server's CPU (msgs/s)", g(f"ours {PROCESSES} pinned"),
            "the same, 1 process", g("ours 1 pinned"), "(report)"),
        row(f"  floor: {PROCESSES} processes, LPUSH + RPOP, off the server's CPU",
            g(f"floor {PROCESSES} pinned"),
            "the same, 1 process", g("floor 1 pinned"), "(floor)"),
        row("wake-up of a blocked get in another process, median (us)", w("ours median"),
            "BLPOP woken by LPUSH, median", w("BLPOP median"), "<= 2.5x (goal 1.5x)"),
        row("wake-up of a blocked get in another process, p99 (us)", w("ours p99"),
            "BLPOP woken by LPUSH, p99", w("BLPOP p99"), "(report)"),
        row("enqueue one: add (at-least-once)", g("add"), "RQ Queue.enqueue", g("RQ enqueue"), "(report)"),
        row("enqueue one: add (at-least-once)", g("add"), "huey task call", g("huey enqueue"), "(report)"),
        row("take, run a no-op, settle: reserve + ack (at-least-once)", g("reserve+ack"),
            "RQ SimpleWorker, jobs run (at-most-once run)", g("RQ run"), "(report)"),
        row("take, run a no-op, settle: reserve + ack (at-least-once)", g("reserve+ack"),
            "huey dequeue + execute (at-most-once)", g("huey run"), "(report)"),
        row("TaskHandler over Redis, no-op tasks, workers in another process (tasks/s)", g("tasks"),
            "RQ SimpleWorker", g("RQ run"), ">= 10x"),
        row("TaskHandler over Redis, no-op tasks, workers in another process (tasks/s)", g("tasks"),
            "huey dequeue + execute", g("huey run"), ">= 1.5x (goal 3x)"),
    ]


def notes_of(server: PinnedServer, aof: bool, sizes: Dict[str, int]) -> List[str]:
    def version(name: str) -> str:
        try:
            return str(__import__(name).__version__)
        except (ImportError, AttributeError):
            return "not installed"

    client = redis.Redis.from_url(server.url)
    info = client.info("server")
    client.close()
    return [
        "items/s, higher is better; wake-ups (us), lower is better; ratio = ours / baseline, in the same "
        "run (only ratios count).",
        f"redis-server {info['redis_version']} on 127.0.0.1, "
        + ("AOF appendfsync always" if aof else "no AOF, no RDB") + f"; {server.describe()}.",
        f"redis-py {redis.__version__} (hiredis {version('hiredis')}), RQ {version('rq')}, "
        f"huey {version('huey')}; bodies: a pickled ~150-byte dict.",
        f"{PROCESSES} processes: spawned once, the same ones for 1 and {PROCESSES}; the target row lets them "
        "run on every CPU (the server stays on its own); the rows 'off the server's CPU' pin them to "
        "the clients' CPUs, which on 2 cores puts them all on one CPU (the floor shows the ceiling).",
        "Guarantees: ours at-least-once (leased reservation, fenced ack, a dead client's messages "
        "come back); RQ at-least-once delivery, at-most-once run (a crashed job goes to failed); "
        "huey at-most-once (popped before it runs).",
        f"Sizes: {sizes['single']:,} single calls, {sizes['cycle']:,} cycles, {sizes['rounds']} rounds "
        f"of {BATCH}, {sizes['windows']} windows of {WINDOW * 1e3:g} ms per process figure (all processes "
        f"cycling from one start to one end), {sizes['rq']} RQ jobs, "
        f"{sizes['huey']:,} huey tasks, {sizes['wake']} wake-ups each side (in turns, {PACE * 1e3:g} ms "
        "apart; the time from just before the add or LPUSH to the return of the get or BLPOP).",
        f"TaskHandler: {sizes['huey']:,} no-op tasks submitted here (untimed) through "
        "TaskHandler(max_workers=0, mq=RedisMessageQueue(...)), then run by TaskHandler(mq=..., "
        f"max_workers={WORKERS}) made in a client process (pinned off the server's CPU, kept across "
        "repetitions); timed from the 'go' (handler start-up included, as RQ's worker's) until every "
        f"future here is resolved. {WORKERS} workers: a no-op task is all round trips, which a few "
        "threads overlap; more only contend for the GIL and the one client CPU.",
        *([] if have_ours() else ["ours: None = unidist_queue.RedisMessageQueue is not in this checkout."]),
    ]


def main(argv: List[str]) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--aof", action="store_true", help="run the server with appendfsync always")
    args = p.parse_args(argv)
    if not server_installed():
        print(f"bench_redis: {INSTALL_HINT}", file=sys.stderr)
        return 2
    sizes = QUICK if args.quick else FULL
    root = tempfile.mkdtemp(prefix="bench_redis.")
    try:
        with PinnedServer(Path(root) / "server", aof=args.aof) as server:
            run = Run(server, sizes)
            try:
                medians = run_cases(run.cases(), args.repeat)
                latencies = run.latencies()
            finally:
                run.close()
            notes = notes_of(server, args.aof, sizes)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(f"bench_redis: median of {args.repeat} interleaved repetitions", rows_of(medians, latencies),
           args.json, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
