"""TaskHandler workers, updates, shutdown and status: the cases ``test_tasks.py`` leaves open.

Bad ``hire``/``update`` arguments name themselves, the reprs; worker ids are never
reused, ``terminate`` with a timeout that is met or with ``reassign`` (the task goes to
the *front* of its series), update results ordered by worker id, updates and tasks
around a worker that crashes or retires while it runs an update (or from a task's
callback), everything ``shutdown`` returns at once, ``status()`` while tasks run, the
bookkeeping seen by the thread a future wakes, and no task lost or run twice while
workers come and go.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import threading
from typing import Any, Dict, List

import pytest
from helpers import Gate, Recorder, RunCounter, blocker, threads_named, wait_until, who

from unidist_queue.errors import ShutDown
from unidist_queue.tasks import Task, TaskHandler

WAIT = 10.0  # every wait in these tests is bounded


def status(th: TaskHandler) -> Dict[str, Any]:
    """``th.status()`` as JSON would give it back (it must survive the round trip)."""
    return json.loads(json.dumps(th.status()))  # type: ignore[no-any-return]


# -- arguments and reprs ---------------------------------------------------------------------


def test_bad_hire_and_update_arguments_name_themselves(th: TaskHandler) -> None:
    with pytest.raises(TypeError, match="slots"):
        th.hire(slots="2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name"):
        th.hire(name=7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="series must be a str or a list"):
        th.hire(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fn must be callable"):
        th.update("not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="kwargs"):
        th.update(print, kwargs=[("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="series"):
        th.update(print, series=1)  # type: ignore[arg-type]
    assert th.roster() == [] and th.update(print).result(WAIT) == []


def test_reprs_of_the_handler_and_of_a_task() -> None:
    started, release, gate = blocker()
    th = TaskHandler(1)
    try:
        assert repr(th) == "<TaskHandler 1 workers>"
        th.submit(gate, "x")
        assert started.wait(WAIT)
        (task,) = th.terminate(1, crash=True)
        assert repr(task) == "<Task 1 'default' 'blocker.<locals>.fn'>"
    finally:
        release.set()
        assert th.shutdown(timeout=WAIT) == []
    assert repr(th) == "<TaskHandler shut down>"


# -- ids and names ----------------------------------------------------------------------------


def test_worker_ids_are_never_reused(th: TaskHandler) -> None:
    assert [th.hire(), th.hire()] == [1, 2]
    assert th.terminate(2) == []
    assert th.terminate(1, crash=True) == []
    assert th.hire("x") == 3
    assert th.roster() == [3]
    assert list(status(th)["workers"]) == ["3"]


def test_each_slot_thread_is_named_after_its_worker(th: TaskHandler) -> None:
    gate = Gate()
    th.hire("s", slots=3, name="crew")
    fs = [th.submit_to("s", gate.task(i)) for i in range(3)]
    gate.wait_started(3)
    names = {t.name for t in threads_named("crew_")}
    assert names == {"crew_0", "crew_1", "crew_2"}
    assert {w for _, w in gate.runs()} == {"crew"}
    gate.opened.set()
    assert [f.result(WAIT) for f in fs] == [0, 1, 2]


# -- terminate --------------------------------------------------------------------------------


def test_terminate_with_a_timeout_that_is_met_is_graceful(th: TaskHandler) -> None:
    gate = Gate()
    wid = th.hire()
    f = th.submit(gate.task("done"))
    gate.wait_started()
    gate.opened.set()
    assert th.terminate(wid, timeout=WAIT) == []
    assert f.result(0) == "done"
    assert threads_named("worker-1_") == []


def test_graceful_terminate_leaves_waiting_tasks_to_others(th: TaskHandler) -> None:
    gate = Gate()
    first = th.hire("s")
    running = th.submit_to("s", gate.task("running"))
    gate.wait_started()
    waiting = [th.submit_to("s", who) for _ in range(3)]
    done = threading.Event()
    result: List[List[Task]] = []

    def stop() -> None:
        result.append(th.terminate(first))
        done.set()

    stopper = threading.Thread(target=stop)
    stopper.start()
    th.hire("s", name="next")
    gate.opened.set()
    assert done.wait(WAIT)
    stopper.join(WAIT)
    assert result == [[]]
    assert running.result(WAIT) == "running"
    assert {f.result(WAIT) for f in waiting} <= {"worker-1", "next"}
    assert th.roster() == [2]


def test_abandoned_thread_output_is_discarded(th: TaskHandler) -> None:
    gate = Gate()
    wid = th.hire()
    f = th.submit(gate.task("late"))
    gate.wait_started()
    (thread,) = threads_named("worker-1_")
    unfinished = th.terminate(wid, crash=True)
    assert [t.future for t in unfinished] == [f]
    (task,) = unfinished
    assert isinstance(task, Task) and isinstance(task.id, int)
    assert (task.series, task.args, task.kwargs) == ("default", (), {})
    assert callable(task.fn)
    assert th.roster() == [] and th.status()["workers"] == {}
    gate.opened.set()
    thread.join(WAIT)  # the abandoned thread ran the task to its end...
    assert not thread.is_alive()
    assert f.running()  # ...and its result went nowhere: the future is the caller's
    assert th.status()["series"]["default"]["running"] == 0
    f.set_result("handled by the caller")


def test_reassigned_task_goes_to_the_front_of_its_series(th: TaskHandler) -> None:
    runs = Recorder()
    stuck = threading.Event()
    release = threading.Event()
    attempts: List[str] = []

    def once_stuck() -> str:
        attempts.append(who())
        if len(attempts) == 1:
            stuck.set()
            assert release.wait(WAIT)
        return runs("reassigned")  # type: ignore[no-any-return]

    first = th.hire("s")
    f = th.submit_to("s", once_stuck)
    assert stuck.wait(WAIT)
    (old,) = threads_named("worker-1_")
    waiting = [th.submit_to("s", runs, i) for i in range(3)]
    assert th.terminate(first, crash=True, reassign=True) == []
    assert not f.done()  # nobody serves "s" now: it waits, at the front
    th.hire("s", name="second")
    assert f.result(WAIT) == "reassigned"
    assert [g.result(WAIT) for g in waiting] == [0, 1, 2]
    assert runs.seen[:4] == [("reassigned", "second"), (0, "second"), (1, "second"), (2, "second")]
    release.set()  # the abandoned run ends; what it returns is discarded
    old.join(WAIT)
    assert f.result(0) == "reassigned"
    assert attempts == ["worker-1", "second"]


def test_reassign_of_a_graceful_terminate_past_its_timeout(th: TaskHandler) -> None:
    gate = Gate()
    first = th.hire()
    f = th.submit(gate.task("x"))
    gate.wait_started()
    assert th.terminate(first, timeout=0.01, reassign=True) == []  # never finishes in time
    th.hire()
    gate.wait_started()  # ran again on worker 2, resolving the same future
    gate.opened.set()
    assert f.result(WAIT) == "x"
    assert [w for _, w in gate.runs()] == ["worker-1", "worker-2"]
    for t in threads_named("worker-1_"):
        t.join(WAIT)


def test_terminate_from_inside_its_own_task(th: TaskHandler) -> None:
    wid = th.hire()

    def quit_job() -> List[Task]:
        return th.terminate(wid)

    assert th.submit(quit_job).result(WAIT) == []
    assert th.roster() == []
    for t in threads_named("worker-1_"):
        t.join(WAIT)
    assert threads_named("worker-1_") == []


# -- update -----------------------------------------------------------------------------------


def test_update_result_is_ordered_by_worker_id(th: TaskHandler) -> None:
    for name in ("c", "a", "d", "b"):
        th.hire(name=name, slots=2)
    assert th.update(who).result(WAIT) == ["c", "a", "d", "b"]  # ids 1, 2, 3, 4
    th.terminate(2)
    assert th.update(who).result(WAIT) == ["c", "d", "b"]


def test_update_exception_of_the_lowest_worker_id(th: TaskHandler) -> None:
    for _ in range(4):
        th.hire()

    def fail_on_even_ids() -> str:
        name = who()
        if int(name.split("-")[1]) % 2 == 0:
            raise LookupError(name)
        return name

    with pytest.raises(LookupError, match=r"^worker-2$"):
        th.update(fail_on_even_ids, ephemeral=True).result(WAIT)
    assert th.roster() == [1, 2, 3, 4]  # an update that raises kills nobody
    assert [th.submit(who).result(WAIT) for _ in range(4)] == ["worker-1", "worker-2", "worker-3", "worker-4"]


def test_update_runs_in_each_worker_thread_once(th: TaskHandler) -> None:
    th.hire("a", slots=4, name="four")
    th.hire("b", name="one")
    calls: List[str] = []
    lock = threading.Lock()

    def note(tag: str, *, suffix: str) -> str:
        with lock:
            calls.append(threading.current_thread().name)
        return tag + suffix

    assert th.update(note, args=["x"], kwargs={"suffix": "!"}).result(WAIT) == ["x!", "x!"]
    assert sorted(c.rsplit("_", 1)[0] for c in calls) == ["four", "one"]


def test_update_for_a_series_is_not_replayed_to_other_hires(th: TaskHandler) -> None:
    seen = Recorder()
    th.update(seen, args=("for-b",), series="b")
    th.update(seen, args=("for-all",))
    th.hire("a", name="wa")
    th.hire(["a", "b"], name="wab")
    # a task runs after the worker's replayed updates
    assert th.submit_to("a", who).result(WAIT) in ("wa", "wab")
    th.update(seen, args=("sync",), ephemeral=True).result(WAIT)
    by_worker: Dict[str, List[Any]] = {}
    for x, w in seen.seen:
        by_worker.setdefault(w, []).append(x)
    assert by_worker == {"wa": ["for-all", "sync"], "wab": ["for-b", "for-all", "sync"]}


def test_no_slot_of_a_new_hire_takes_a_task_before_the_saved_updates_ran(th: TaskHandler) -> None:
    release = threading.Event()
    in_update = threading.Event()
    order = Recorder()

    def slow_setup() -> None:
        in_update.set()
        assert release.wait(WAIT)
        order("update")

    th.update(slow_setup)
    fs = [th.submit(order, i) for i in range(3)]  # waiting: nobody serves "default" yet
    th.hire(slots=3)
    assert in_update.wait(WAIT)
    s = th.status()["series"]["default"]
    assert (s["waiting"], s["running"], s["processed"]) == (3, 0, 0)  # it took none yet
    assert order.values() == []
    release.set()
    assert [f.result(WAIT) for f in fs] == [0, 1, 2]
    assert order.values()[0] == "update" and sorted(order.values()[1:]) == [0, 1, 2]


def test_update_waits_for_a_busy_worker_and_runs_before_its_next_task(th: TaskHandler) -> None:
    gate = Gate()
    order = Recorder()
    th.hire()
    running = th.submit(gate.task("running"))
    gate.wait_started()
    queued = th.submit(order, "task")
    fut = th.update(order, args=("update",), ephemeral=True)
    assert not fut.done()  # the worker's only thread is busy
    gate.opened.set()
    assert fut.result(WAIT) == ["update"]
    assert running.result(WAIT) == "running" and queued.result(WAIT) == "task"
    assert order.values() == ["update", "task"]


# -- updates and tasks around a worker that crashes or retires -------------------------------


def test_an_update_pending_on_a_crashed_worker_leaves_it_out(th: TaskHandler) -> None:
    gates = [blocker(), blocker()]
    ran: List[str] = []
    w1, w2 = th.hire(), th.hire()
    for started, _, gate in gates:
        th.submit(gate)
        assert started.wait(WAIT)  # each worker runs one
    update = th.update(lambda: ran.append(threading.current_thread().name) or "updated")
    assert len(th.terminate(w1, crash=True)) == 1
    assert not update.done()  # still waits for worker 2
    for _, release, _ in gates:
        release.set()
    assert update.result(WAIT) == ["updated"]  # the crashed worker is left out
    assert ran == ["worker-2_0"] and th.roster() == [w2]
    started, release, last = blocker()
    th.submit(last)
    assert started.wait(WAIT)
    only = th.update(lambda: ran.append("never"), ephemeral=True)
    th.terminate(w2, crash=True)
    assert only.result(WAIT) == []  # its one worker crashed before running it
    release.set()
    assert ran == ["worker-2_0"]


def test_a_task_given_to_a_worker_busy_with_an_update_is_reassigned_unstarted(th: TaskHandler) -> None:
    started, release, gate = blocker()
    w1 = th.hire()
    update = th.update(gate, args=("u",), ephemeral=True)
    assert started.wait(WAIT)  # the worker's thread runs the update: the worker is free
    future = th.submit(str.upper, "t")  # given to it, waiting behind the update
    assert th.terminate(w1, crash=True, reassign=True) == []
    assert not future.running() and not future.done()
    th.hire()
    assert future.result(WAIT) == "T"  # the next worker ran it
    release.set()
    assert update.result(WAIT) == ["u"]  # the crashed worker had started it: it counts


def test_a_saved_update_that_raises_is_logged_and_the_worker_still_works(
    th: TaskHandler, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("update broke")

    caplog.set_level(logging.ERROR, logger="unidist_queue.tasks")
    assert th.update(broken).result(WAIT) == []  # no worker yet: saved for new hires
    th.hire()
    assert th.submit(sum, [1, 2]).result(WAIT) == 3
    assert "raised in worker 1" in caplog.text and "update broke" in caplog.text


def test_a_worker_crashed_while_it_runs_its_saved_updates_runs_no_more_of_them(th: TaskHandler) -> None:
    started, release, gate = blocker()
    after: List[str] = []
    th.update(gate)
    th.update(lambda: after.append(threading.current_thread().name))
    w1 = th.hire()
    assert started.wait(WAIT)
    assert th.terminate(w1, crash=True) == []
    release.set()
    th.hire()  # the second hire runs both saved updates
    assert th.submit(int, "5").result(WAIT) == 5
    assert after == ["worker-2_0"]


def test_a_worker_terminated_while_it_runs_its_saved_updates_takes_no_task(th: TaskHandler) -> None:
    started, release, gate = blocker()
    th.update(gate)
    w1 = th.hire()
    assert started.wait(WAIT)
    future = th.submit(str.lower, "X")  # the worker is not taking tasks yet: it waits
    returned: List[List[Task]] = []
    stopper = threading.Thread(target=lambda: returned.append(th.terminate(w1)))
    stopper.start()
    wait_until(lambda: th.roster() == [])  # retiring
    release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive() and returned == [[]]
    assert not future.done() and th.status()["series"]["default"]["waiting"] == 1
    th.hire()
    assert future.result(WAIT) == "x"


def test_a_callback_that_crashes_its_own_worker_gets_back_the_task_it_took_next(th: TaskHandler) -> None:
    started, release, gate = blocker()
    ran: List[str] = []
    w1 = th.hire()
    first = th.submit(gate, "first")
    assert started.wait(WAIT)
    second = th.submit(ran.append, "second")  # waits: the worker takes it when "first" ends
    returned: List[List[Task]] = []
    first.add_done_callback(lambda f: returned.append(th.terminate(w1, crash=True)))
    release.set()
    assert first.result(WAIT) == "first"
    wait_until(lambda: bool(returned))
    assert [t.future for t in returned[0]] == [second]  # taken, not started
    assert not second.done() and ran == []
    assert second.cancel()


# -- shutdown ---------------------------------------------------------------------------------


def test_shutdown_returns_every_unfinished_task_once() -> None:
    gate = Gate()
    th = TaskHandler(0)
    th.hire("busy", slots=2)
    running = [th.submit_to("busy", gate.task(i)) for i in range(2)]
    gate.wait_started(2)
    waiting = [th.submit_to("busy", abs, -i) for i in range(3)]
    orphans = [th.submit_to("nobody", abs, -i) for i in range(2)]
    unfinished = th.shutdown(cancel_futures=True, timeout=0.01)
    futures = [t.future for t in unfinished]
    assert len(futures) == len(set(futures)) == 7
    assert set(futures) == {*running, *waiting, *orphans}
    assert all(f.cancelled() for f in waiting + orphans)
    assert all(f.running() for f in running)  # abandoned: left to the caller
    assert all(isinstance(t, Task) for t in unfinished)
    assert {t.series for t in unfinished} == {"busy", "nobody"}
    gate.opened.set()
    for t in threads_named("worker-1_"):
        t.join(WAIT)
    assert th.shutdown() == []  # idempotent: later calls return []


def test_shutdown_with_wait_runs_the_tasks_waiting_for_current_workers() -> None:
    gate = Gate()
    ran = Recorder()
    th = TaskHandler(0)
    th.hire(["a", "b"])
    held = th.submit_to("a", gate.task("held"))
    gate.wait_started()
    later = [th.submit_to(s, ran, f"{s}{i}") for i in range(3) for s in "ba"]
    threading.Timer(0.01, gate.opened.set).start()
    assert th.shutdown(wait=True) == []
    assert held.result(0) == "held"
    assert [f.result(0) for f in later] == ["b0", "a0", "b1", "a1", "b2", "a2"]
    assert ran.values() == ["a0", "a1", "a2", "b0", "b1", "b2"]  # listed order: a first
    assert threads_named("worker-") == []


def test_shutdown_from_a_task_does_not_wait_for_it() -> None:
    th = TaskHandler(1)
    result: List[List[Task]] = []

    def stop_all() -> str:
        result.append(th.shutdown(wait=True))
        return "stopped"

    f = th.submit(stop_all)
    assert f.result(WAIT) == "stopped"
    assert result == [[]]
    th.shutdown(wait=True, timeout=WAIT)
    assert threads_named("worker-") == []


def test_update_and_map_after_shutdown_raise() -> None:
    th = TaskHandler(1)
    th.shutdown()
    with pytest.raises(ShutDown):
        th.update(abs, args=(1,))
    with pytest.raises(ShutDown):
        th.map(abs, [1])
    assert th.roster() == []
    assert th.terminate(1) == []


# -- status -----------------------------------------------------------------------------------


def test_status_while_tasks_run_and_wait(th: TaskHandler) -> None:
    gate = Gate()
    th.hire([(2, "a"), (1, "b")], slots=2, name="ab")
    th.hire("b")
    fs = [th.submit_to("a", gate.task(i)) for i in range(2)]  # both slots of "ab"
    gate.wait_started(2)
    fs.append(th.submit_to("b", gate.task(2)))  # worker 2
    gate.wait_started()
    fs += [th.submit_to("a", abs, -1), th.submit_to("b", abs, -2), th.submit_to("b", abs, -3)]
    st = status(th)
    assert {k: st["series"]["a"][k] for k in ("waiting", "running", "processed", "failed")} == {
        "waiting": 1, "running": 2, "processed": 0, "failed": 0}
    assert {k: st["series"]["b"][k] for k in ("waiting", "running", "processed", "failed")} == {
        "waiting": 2, "running": 1, "processed": 0, "failed": 0}
    w1, w2 = st["workers"]["1"], st["workers"]["2"]
    assert (w1["series"], w1["slots"], w1["busy"], w1["processed"]) == ([[2, "a"], [1, "b"]], 2, 2, 0)
    assert (w2["series"], w2["slots"], w2["busy"], w2["processed"]) == ([[0, "b"]], 1, 1, 0)
    gate.opened.set()
    assert [f.result(WAIT) for f in fs] == [0, 1, 2, 1, 2, 3]
    st = status(th)
    for name, n in (("a", 3), ("b", 3)):
        s = st["series"][name]
        assert (s["waiting"], s["running"], s["processed"], s["failed"]) == (0, 0, n, 0)
        lat = s["latency_ms"]
        assert lat["queued_max"] >= lat["queued_mean"] >= 0 and lat["run_max"] >= lat["run_mean"] >= 0
    assert st["workers"]["1"]["processed"] + st["workers"]["2"]["processed"] == 6
    assert st["workers"]["1"]["busy"] == st["workers"]["2"]["busy"] == 0


def test_status_of_a_fresh_handler_and_a_series_with_no_task_yet(th: TaskHandler) -> None:
    assert status(th) == {"series": {}, "workers": {}}
    th.hire("idle")
    s = status(th)["series"]["idle"]
    assert (s["waiting"], s["running"], s["processed"], s["failed"]) == (0, 0, 0, 0)
    assert s["latency_ms"] == {"queued_mean": 0, "queued_max": 0, "run_mean": 0, "run_max": 0}


def test_status_drops_terminated_workers(th: TaskHandler) -> None:
    a = th.hire()
    th.hire("x")
    th.terminate(a)
    assert list(status(th)["workers"]) == ["2"]


def test_bookkeeping_is_done_before_the_waiter_wakes(th: TaskHandler) -> None:
    th.hire([(5, "s")], name="high")
    th.hire([(0, "s")], name="low")
    for i in range(1, 101):
        assert th.submit_to("s", who).result(WAIT) == "high"  # free again before the future resolved
        st = status(th)
        assert (st["series"]["s"]["processed"], st["series"]["s"]["running"]) == (i, 0)
        assert (st["workers"]["1"]["processed"], st["workers"]["1"]["busy"]) == (i, 0)


def test_failed_counts_before_the_waiter_wakes(th: TaskHandler) -> None:
    th.hire()
    for i in range(1, 21):
        with pytest.raises(ZeroDivisionError):
            th.submit(divmod, 1, 0).result(WAIT)
        s = status(th)["series"]["default"]
        assert (s["processed"], s["failed"]) == (i, i)


# -- nothing lost or run twice while workers come and go ------------------------------------


def test_no_task_lost_or_run_twice_while_workers_come_and_go() -> None:
    count = RunCounter()
    counts = count.counts
    series = ["a", "b", "c"]
    rounds = threading.Semaphore(0)
    with TaskHandler(0) as th:
        for s in series:
            th.hire(s)  # always one worker per series

        def churn() -> None:
            for k in range(200):
                wid = th.hire([series[k % 3], (k % 2, series[(k + 1) % 3])], slots=1 + k % 3)
                th.submit_to(series[k % 3], abs, -k)
                th.terminate(wid)  # graceful: finishes what it was given
                rounds.release()

        churner = threading.Thread(target=churn)
        churner.start()
        fs: List[cf.Future[int]] = []
        try:
            for batch in range(20):  # interleave: 300 tasks, then 10 hire/terminate rounds
                fs += [th.submit_to(series[i % 3], count, i) for i in range(batch * 300, batch * 300 + 300)]
                for _ in range(10):
                    assert rounds.acquire(timeout=WAIT)
            _done, not_done = cf.wait(fs, timeout=60)
        finally:
            churner.join(WAIT)
        assert not not_done and not churner.is_alive()
        assert [f.result() for f in fs] == list(range(6000))
    assert counts == dict.fromkeys(range(6000), 1)


def test_graceful_terminate_runs_the_pending_update_and_twice_is_harmless(th: TaskHandler) -> None:
    gate = Gate()
    wid = th.hire()
    f = th.submit(gate.task("busy"))
    gate.wait_started()
    pending = th.update(who, ephemeral=True)
    results: List[List[Task]] = []
    lock = threading.Lock()

    def stop() -> None:
        got = th.terminate(wid)
        with lock:
            results.append(got)

    stoppers = [threading.Thread(target=stop) for _ in range(2)]
    for t in stoppers:
        t.start()
    gate.opened.set()
    for t in stoppers:
        t.join(WAIT)
    assert results == [[], []]
    assert f.result(0) == "busy"
    assert pending.result(WAIT) == ["worker-1"]


def _race_shutdown_once(mq: Any) -> None:
    th = TaskHandler(2, mq=mq)
    start = threading.Barrier(4)
    busy = threading.Event()  # set once a submitter is well under way
    futures: List[cf.Future[Any]] = []
    lock = threading.Lock()

    def submitter() -> None:
        start.wait(WAIT)
        mine: List[cf.Future[Any]] = []
        for i in range(100_000):
            if i == 300:
                busy.set()
            try:
                mine.append(th.submit(int, i))
            except ShutDown:
                break
        with lock:
            futures.extend(mine)

    threads = [threading.Thread(target=submitter) for _ in range(3)]
    for t in threads:
        t.start()
    start.wait(WAIT)
    assert busy.wait(WAIT)
    th.shutdown(wait=True)
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    done, pending = cf.wait(futures, timeout=WAIT)
    assert not pending  # every accepted task ran: shutdown waited for them
    assert all(f.result() in range(100_000) for f in done)


@pytest.mark.parametrize("own_mq", [True, False], ids=["private mq", "mq passed in"])
def test_submit_racing_shutdown_never_strands_a_task(own_mq: bool) -> None:
    """Submitters racing ``shutdown``: each submit raises ShutDown or its task runs."""
    from unidist_queue.queues import MessageQueue

    for _ in range(20):
        mq = None if own_mq else MessageQueue()
        _race_shutdown_once(mq)
        if mq is not None:
            assert mq.count("task:default") == 0
            mq.close()
