"""Loop and DelegateLoop: the original buildbot loop's behaviours (ORIGINALS.md section 5),
its fixed bugs, and DESIGN.md section 5.

No sleeps and no timing thresholds: every wait is on an Event, a Condition or
``wait_quiet`` with a generous timeout, and timers run on the ``clock`` fixture (a
ManualClock) with :meth:`Loop.poke` after each ``advance``.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Set

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from unidist_queue.loop import DelegateLoop, Loop

WAIT = 30.0


class Recorder:
    """Shared log of processor calls, with a Condition to wait for a number of them."""

    def __init__(self) -> None:
        self.calls: List[Any] = []
        self.cond = threading.Condition()

    def add(self, item: Any) -> None:
        with self.cond:
            self.calls.append(item)
            self.cond.notify_all()

    def wait_len(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.calls) >= n, WAIT), self.calls

    def proc(self, tag: Any, result: Any = None) -> Callable[[], Any]:
        def processor() -> Any:
            self.add(tag)
            return result
        return processor


class CountingClock:
    """Wraps the ManualClock: counts reads, so a test knows the thread has looked."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.reads = 0
        self.cond = threading.Condition()

    def __call__(self) -> float:
        now: float = self.clock()
        with self.cond:
            self.reads += 1
            self.cond.notify_all()
        return now

    def advance_and_poke(self, seconds: float, loop: Loop) -> None:
        """Advance, poke, and return once the loop thread has read the new time."""
        with self.cond:
            before = self.reads
        self.clock.advance(seconds)
        loop.poke()
        with self.cond:
            assert self.cond.wait_for(lambda: self.reads > before, WAIT)


def loop_threads(name: str) -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


# -- the original loop's tests ----------------------------------------------------------------


def test_one_processor_runs_once() -> None:
    rec = Recorder()
    with Loop(rec.proc("p")) as loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
        assert loop.is_quiet()
    assert rec.calls == ["p"]


def test_300_processors_each_once_in_order_without_recursion() -> None:
    depths: List[int] = []

    def depth() -> int:
        frame: Optional[FrameType] = inspect.currentframe()
        n = 0
        while frame is not None:
            n, frame = n + 1, frame.f_back
        return n

    calls: List[int] = []

    def make(i: int) -> Callable[[], None]:
        def proc() -> None:
            calls.append(i)
            depths.append(depth())
        return proc

    procs = [make(i) for i in range(300)]
    with Loop(*procs) as loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
    assert calls == list(range(300))
    assert len(set(depths)) == 1  # every call at the same stack depth: no recursion


def test_retrigger_three_times_gives_three_full_passes() -> None:
    rec = Recorder()
    left = [3]
    loop = Loop()

    def c() -> None:
        rec.add(f"c-{left[0]}")
        left[0] -= 1
        if left[0] > 0:
            loop.trigger()

    loop.add(c)
    loop.add(rec.proc("d"))  # taken along in every pass
    with loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
    assert rec.calls == ["c-3", "d", "c-2", "d", "c-1", "d"]


def test_four_rings_from_two_processors_merge_into_three_passes() -> None:
    rec = Recorder()
    count = [4]
    loop = Loop()

    def make() -> Callable[[], None]:
        def proc() -> None:
            rec.add("p")
            if count[0] > 0:
                rec.add("t")
                loop.trigger()
            count[0] -= 1
        return proc

    loop.add(make())
    loop.add(make())
    with loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
    assert rec.calls == ["p", "t", "p", "t", "p", "t", "p", "t", "p", "p"]


def test_asking_for_plus_10s_runs_at_0_10_20_30_40(clock: Any) -> None:
    rec = Recorder()
    start = clock()

    def p() -> Optional[float]:
        rec.add(clock() - start)
        return clock() + 10 if len(rec.calls) < 5 else None

    with Loop(p, min_delay=5.0, clock=clock) as loop:
        loop.trigger()
        for n in range(1, 5):
            rec.wait_len(n)
            assert loop.wait_quiet(WAIT)  # the timer is set before the loop goes quiet
            clock.advance(10)
            loop.poke()
        rec.wait_len(5)
        assert loop.wait_quiet(WAIT)
    assert rec.calls == [0, 10, 20, 30, 40]


def test_at_most_one_processor_active() -> None:
    lock = threading.Lock()
    active = [0]
    peak = [0]
    entries = [0]

    def proc() -> None:
        with lock:
            active[0] += 1
            entries[0] += 1
            peak[0] = max(peak[0], active[0])
        for _ in range(100):  # give another thread a chance to overlap, if it could
            pass
        with lock:
            active[0] -= 1

    procs = [(lambda: proc()) for _ in range(10)]
    with Loop(*procs) as loop:
        barrier = threading.Barrier(4)

        def ringer() -> None:
            barrier.wait(WAIT)
            for _ in range(50):
                loop.trigger()

        threads = [threading.Thread(target=ringer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert loop.wait_quiet(WAIT)
    assert peak[0] == 1
    assert entries[0] % 10 == 0 and 10 <= entries[0] <= 10 * 200


def test_errors_are_logged_and_the_pass_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()

    def bad() -> None:
        raise RuntimeError("boom")

    with Loop(bad, rec.proc("bool", True), rec.proc("str", "soon"), rec.proc("nan", float("nan")),
              rec.proc("ok")) as loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
        loop.trigger()  # still alive: a second pass runs everyone again
        assert loop.wait_quiet(WAIT)
    assert rec.calls == ["bool", "str", "nan", "ok"] * 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 8
    assert "boom" in caplog.text and "Traceback" in caplog.text
    assert "returned True" in caplog.text and "returned 'soon'" in caplog.text


def test_a_timer_wake_is_not_a_full_pass(clock: Any) -> None:
    rec = Recorder()
    with Loop(rec.proc("a"), rec.proc("b", clock() + 10), rec.proc("c"), clock=clock) as loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
        clock.advance(10)
        loop.poke()
        rec.wait_len(4)
        assert loop.wait_quiet(WAIT)
    assert rec.calls == ["a", "b", "c", "b"]


def test_due_processors_run_in_due_order(clock: Any) -> None:
    rec = Recorder()
    t0 = clock()
    with Loop(rec.proc("late", t0 + 30), rec.proc("early", t0 + 10), rec.proc("mid", t0 + 20),
              clock=clock) as loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
        clock.advance(100)
        loop.poke()
        rec.wait_len(6)
    assert rec.calls[3:] == ["early", "mid", "late"]


def test_a_ring_cancels_pending_timers(clock: Any) -> None:
    rec = Recorder()
    first = [True]

    def a() -> Optional[float]:
        rec.add("a")
        if first[0]:
            first[0] = False
            due: float = clock() + 10
            return due
        return None

    cclock = CountingClock(clock)
    with Loop(a, clock=cclock) as loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
        loop.trigger()  # the second pass returns None: the +10 timer must be gone
        assert loop.wait_quiet(WAIT)
        cclock.advance_and_poke(20, loop)
        loop.trigger()  # a marker pass: anything the poke ran is logged before it
        assert loop.wait_quiet(WAIT)
    assert rec.calls == ["a", "a", "a"]


def test_a_ring_interrupts_a_long_timed_wait(clock: Any) -> None:
    """With a timer 1000 s away the thread sleeps; a ring must wake it at once."""
    rec = Recorder()
    with Loop(rec.proc("p", clock() + 1000), clock=clock) as loop:
        loop.trigger()
        rec.wait_len(1)
        assert loop.wait_quiet(WAIT)
        loop.trigger()
        rec.wait_len(2)  # would take 1000 s if the ring did not interrupt the wait
        assert loop.wait_quiet(WAIT)


def test_a_ring_ends_a_timer_wake_up(clock: Any) -> None:
    rec = Recorder()
    loop = Loop(clock=clock)
    calls = {"a": 0, "b": 0}

    def a() -> Optional[float]:
        rec.add("a")
        calls["a"] += 1
        if calls["a"] == 2:  # in the timer wake-up: ring
            loop.trigger()
        return clock() + 10 if calls["a"] == 1 else None

    def b() -> Optional[float]:
        rec.add("b")
        calls["b"] += 1
        return clock() + 10 if calls["b"] == 1 else None

    loop.add(a)
    loop.add(b)
    with loop:
        loop.trigger()
        rec.wait_len(2)
        assert loop.wait_quiet(WAIT)
        clock.advance(10)
        loop.poke()  # a and b are due; a rings, so b's timer run gives way to the full pass
        rec.wait_len(5)
        assert loop.wait_quiet(WAIT)
    assert rec.calls == ["a", "b", "a", "a", "b"]


def test_min_delay_counts_from_the_start_of_the_call(clock: Any) -> None:
    """Asking for +1 s (or a past time) with min_delay=5 runs 5 s after the call began."""
    rec = Recorder()
    t0 = clock()
    asks = [t0 + 1, t0 - 100]

    def p() -> Optional[float]:
        rec.add(clock() - t0)
        clock.advance(2)  # the call takes 2 s: the delay still counts from its start
        return asks.pop(0) if asks else None

    cclock = CountingClock(clock)
    with Loop(p, min_delay=5.0, clock=cclock) as loop:
        loop.trigger()
        rec.wait_len(1)
        assert loop.wait_quiet(WAIT)
        cclock.advance_and_poke(2, loop)  # now t0+4: not yet due
        cclock.advance_and_poke(1, loop)  # now t0+5: due
        rec.wait_len(2)
        assert loop.wait_quiet(WAIT)
        cclock.advance_and_poke(2, loop)  # began at t0+5, ended at t0+7; now t0+9: not yet
        cclock.advance_and_poke(1, loop)  # now t0+10: due
        rec.wait_len(3)
        assert loop.wait_quiet(WAIT)
    assert rec.calls == [0, 5, 10]


def test_running_again_at_once_does_not_spin_forever() -> None:
    """The Pusher's way: min_delay=0, monotonic clock, return clock() to run again."""
    rec = Recorder()

    def p() -> Optional[float]:
        rec.add("p")
        return time.monotonic() if len(rec.calls) < 5 else None

    with Loop(p, min_delay=0.0, clock=time.monotonic) as loop:
        loop.trigger()
        rec.wait_len(5)
        assert loop.wait_quiet(WAIT)
    assert rec.calls == ["p"] * 5


def test_ring_while_stopped_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    caplog.set_level(logging.DEBUG, logger="unidist_queue.loop")
    loop = Loop(rec.proc("p"))
    loop.trigger()  # before start
    loop.start()
    assert loop.wait_quiet(WAIT)
    loop.stop(WAIT)
    loop.trigger()  # after stop
    loop.start()
    assert loop.wait_quiet(WAIT)
    loop.stop(WAIT)
    assert rec.calls == []
    assert caplog.text.count("ring ignored") == 2


def test_start_stop_start_and_no_thread_left() -> None:
    rec = Recorder()
    loop = Loop(rec.proc("p"), name="loop-under-test")
    for n in range(1, 4):
        loop.start()
        loop.start()  # a no-op
        assert len(loop_threads("loop-under-test")) == 1
        loop.trigger()
        rec.wait_len(n)
        assert loop.wait_quiet(WAIT)
        loop.stop(WAIT)
        assert loop_threads("loop-under-test") == []
        loop.stop(WAIT)
    assert rec.calls == ["p"] * 3
    Loop().stop()  # stopping a loop never started is fine


def test_stop_finishes_the_current_processor_only() -> None:
    rec = Recorder()
    started, release = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        assert release.wait(WAIT)
        rec.add("slow done")

    loop = Loop(slow, rec.proc("next"), name="loop-stopping")
    loop.start()
    loop.trigger()
    assert started.wait(WAIT)
    stopper = threading.Thread(target=loop.stop, args=(WAIT,))
    stopper.start()
    assert not loop.wait_quiet(0)  # stop() waits for slow to finish
    release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert loop_threads("loop-stopping") == []
    assert rec.calls == ["slow done"]
    assert loop.is_quiet()


def test_stop_from_a_processor() -> None:
    rec = Recorder()
    loop = Loop(name="loop-self-stop")
    loop.add(lambda: loop.stop(WAIT))
    loop.add(rec.proc("after"))
    loop.start()
    loop.trigger()
    assert loop.wait_quiet(WAIT)
    loop.stop(WAIT)
    assert rec.calls == []
    assert loop_threads("loop-self-stop") == []


def test_start_after_a_timed_out_stop_keeps_the_same_thread() -> None:
    rec = Recorder()
    started, release = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        assert release.wait(WAIT)
        rec.add("slow")

    loop = Loop(slow, name="loop-revived")
    loop.start()
    loop.trigger()
    assert started.wait(WAIT)
    loop.stop(0)  # times out: slow is still running
    loop.start()  # revives the finishing thread instead of starting a second one
    assert len(loop_threads("loop-revived")) == 1
    release.set()
    rec.wait_len(1)
    assert loop.wait_quiet(WAIT)
    loop.trigger()
    rec.wait_len(2)
    loop.stop(WAIT)
    assert loop_threads("loop-revived") == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_base_exception_leaves_a_stopped_restartable_loop() -> None:
    rec = Recorder()
    raised = [False]

    def exits() -> None:
        if not raised[0]:
            raised[0] = True
            raise SystemExit
        rec.add("back")

    loop = Loop(exits, name="loop-exit")
    loop.start()
    loop.trigger()
    assert loop.wait_quiet(WAIT)
    for t in loop_threads("loop-exit"):
        t.join(WAIT)
    assert loop_threads("loop-exit") == []
    loop.trigger()  # stopped: ignored
    with loop:
        loop.trigger()
        rec.wait_len(1)
    assert rec.calls == ["back"]


def test_add_twice_keeps_one_and_remove(clock: Any) -> None:
    rec = Recorder()
    p = rec.proc("p", clock() + 10)
    loop = Loop(p, p, clock=clock)
    loop.add(p)
    assert loop.processors() == [p]
    with pytest.raises(KeyError):
        loop.remove(rec.proc("never added"))
    with loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
        loop.remove(p)  # drops its timer too
        assert loop.processors() == []
        with pytest.raises(KeyError):
            loop.remove(p)
        clock.advance(100)
        loop.poke()
        loop.add(q := rec.proc("q"))
        loop.trigger()  # marker pass
        assert loop.wait_quiet(WAIT)
        assert loop.processors() == [q]
    assert rec.calls == ["p", "q"]


def test_a_processor_removed_during_a_pass_is_skipped() -> None:
    rec = Recorder()
    loop = Loop()
    b = rec.proc("b")
    loop.add(lambda: loop.remove(b))
    loop.add(b)
    loop.add(lambda: loop.add(rec.proc("added")))  # added during a pass: next ring
    with loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
        assert rec.calls == []
        loop.trigger()
        assert loop.wait_quiet(WAIT)
    assert rec.calls == ["added"]


def test_a_processor_that_removes_itself_gets_no_timer(clock: Any) -> None:
    rec = Recorder()
    loop = Loop(min_delay=0.0, clock=clock)

    def leaving() -> float:
        rec.add("leaving")
        loop.remove(leaving)
        return clock() + 10

    staying = rec.proc("staying", clock() + 10)
    loop.add(leaving)
    loop.add(staying)
    with loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)  # timers are set before the loop goes quiet
        assert "1 timer(s)" in repr(loop)  # the staying processor's only
        assert loop.processors() == [staying] and rec.calls == ["leaving", "staying"]


def test_wait_quiet_times_out_and_refuses_its_own_thread() -> None:
    started, release = threading.Event(), threading.Event()
    errors: List[BaseException] = []
    loop = Loop()

    def p() -> None:
        try:
            loop.wait_quiet(WAIT)
        except RuntimeError as exc:
            errors.append(exc)
        started.set()
        assert release.wait(WAIT)

    loop.add(p)
    assert loop.wait_quiet(0)  # not started: quiet
    with loop:
        loop.trigger()
        assert started.wait(WAIT)
        assert not loop.is_quiet()
        assert not loop.wait_quiet(0)
        with pytest.raises(ValueError):
            loop.wait_quiet(-1)
        release.set()
        assert loop.wait_quiet(WAIT)
    assert len(errors) == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Loop(min_delay=-1)
    with pytest.raises(TypeError):
        Loop(min_delay="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Loop().stop(-1)


def test_context_manager_and_repr() -> None:
    with Loop(name="cm") as loop:
        assert "running" in repr(loop) and "'cm'" in repr(loop)
        assert len(loop_threads("cm")) == 1
    assert "stopped" in repr(loop)
    assert loop_threads("cm") == []


def test_many_rings_from_many_threads_merge() -> None:
    rec = Recorder()
    with Loop(rec.proc("p")) as loop:
        barrier = threading.Barrier(8)

        def ringer() -> None:
            barrier.wait(WAIT)
            for _ in range(100):
                loop.trigger()

        threads = [threading.Thread(target=ringer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert loop.wait_quiet(WAIT)
    assert 1 <= len(rec.calls) <= 800


# -- DelegateLoop -------------------------------------------------------------------------------


def test_delegate_asks_each_pass_and_survives_a_raising_source(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    sources: List[List[Callable[[], Any]]] = []
    asked = [0]

    def get() -> List[Callable[[], Any]]:
        asked[0] += 1
        if not sources:
            raise RuntimeError("no processors today")
        return sources.pop()

    with DelegateLoop(get) as loop:
        assert not hasattr(loop, "add") and not hasattr(loop, "remove")
        loop.trigger()
        assert loop.wait_quiet(WAIT)
        sources.append([rec.proc("x"), rec.proc("y")])
        loop.trigger()
        assert loop.wait_quiet(WAIT)
    assert rec.calls == ["x", "y"]
    assert asked[0] == 2
    assert "no processors today" in caplog.text and "Traceback" in caplog.text


def test_delegate_timer_runs_only_processors_still_returned(clock: Any) -> None:
    rec = Recorder()
    a = rec.proc("a", clock() + 10)
    b = rec.proc("b", clock() + 10)
    current = [a, b]
    with DelegateLoop(lambda: list(current), clock=clock) as loop:
        loop.trigger()
        assert loop.wait_quiet(WAIT)
        current.remove(a)
        clock.advance(10)
        loop.poke()
        rec.wait_len(3)
        assert loop.wait_quiet(WAIT)
    assert rec.calls == ["a", "b", "b"]


# -- a model check ------------------------------------------------------------------------------


class LoopMachine(RuleBasedStateMachine):
    """The Loop against a model: an ordered set of processors, and which must run."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.epoch = 0  # rings so far (incremented just before each trigger())
        self.active = 0
        self.peak = 0
        self.seen: Dict[int, int] = {}  # processor number -> epoch at its last call's start
        self.runs: Dict[int, int] = {}
        self.procs: Dict[int, Callable[[], None]] = {}
        self.registered: List[int] = []  # the model
        self.must_run: Set[int] = set()  # registered at the last ring and ever since
        # self.lock guards the model; held while calling the loop's add/remove/trigger so
        # that the model and the loop change together (lock order: self.lock, then the loop's).
        self.loop = Loop(name="loop-machine")
        self.loop.start()

    def _proc(self, n: int) -> Callable[[], None]:
        """Processor ``n``: records its call; ``n % 5 == 3`` rings on its first two calls,
        ``n % 5 == 4`` raises."""
        if n not in self.procs:
            def processor() -> None:
                with self.lock:
                    self.active += 1
                    self.peak = max(self.peak, self.active)
                    self.seen[n] = self.epoch
                    self.runs[n] = self.runs.get(n, 0) + 1
                    self.active -= 1
                    if n % 5 == 3 and self.runs[n] <= 2:
                        self._ring_locked()
                if n % 5 == 4:
                    raise ValueError(f"processor {n} fails on purpose")
            self.procs[n] = processor
        return self.procs[n]

    def _ring_locked(self) -> None:
        self.epoch += 1
        self.must_run = set(self.registered)
        self.loop.trigger()

    @rule(n=st.integers(0, 9))
    def add(self, n: int) -> None:
        with self.lock:
            self.loop.add(self._proc(n))
            if n not in self.registered:
                self.registered.append(n)

    @rule(n=st.integers(0, 9))
    def remove(self, n: int) -> None:
        with self.lock:
            if n in self.registered:
                self.loop.remove(self._proc(n))
                self.registered.remove(n)
                self.must_run.discard(n)
                return
        with pytest.raises(KeyError):
            self.loop.remove(self._proc(n))

    @rule()
    def trigger(self) -> None:
        with self.lock:
            self._ring_locked()

    @rule()
    def wait_quiet(self) -> None:
        assert self.loop.wait_quiet(WAIT)
        with self.lock:
            for n in self.must_run:
                assert self.seen.get(n) == self.epoch, (n, self.seen, self.epoch)
            for runs in self.runs.values():
                assert runs <= self.epoch

    @invariant()
    def one_at_a_time(self) -> None:
        with self.lock:
            assert self.peak <= 1
            assert [self.procs[n] for n in self.registered] == self.loop.processors()

    def teardown(self) -> None:
        self.loop.stop(WAIT)
        assert not loop_threads("loop-machine")


LoopMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestLoopMachine = LoopMachine.TestCase
