"""A client SIGKILLed while holding ``lease=None`` reservations (DESIGN 12, issue 15 point 4).

A session reservation lasts while its client lives: the client renews it in the
background, so it does not come back while the holder is alive, however long that is;
once the holder is killed with SIGKILL, it is ready again when the session lease runs
out, at the front of its queue in id order, with its ``attempts`` kept.

The child (``session_lease=SESSION``) holds three of the five messages of queue ``q``
(the first reserved, nacked and reserved again, so ``attempts`` 2) and both messages of
queue ``w``. The parent checks nothing came back over several session leases, kills the
child, then: a ``reserve`` of ``w`` blocked in the parent (nothing else is ready there)
wakes when the lease lapses, and ``q`` reads ``1 2 3 4 5`` again.
"""

from __future__ import annotations

import time
from pathlib import Path

from procs_helpers import WAIT, Child, wait_for

from unidist_queue.redisq import RedisMessageQueue

SESSION = 1.5  # the child's session lease, seconds

CHILD = r"""
url, session = sys.argv[1], float(sys.argv[2])
mq = RedisMessageQueue(url, session_lease=session)
first = mq.reserve("q", timeout=10)
mq.nack(first)
held = [mq.reserve("q", timeout=10) for _ in range(3)]
held += mq.reserve_many("w", 2, timeout=10)
print("held", *[f"{m.queue}:{m.id}:{m.attempts}" for m in held], flush=True)
sys.stdin.readline()  # SIGKILLed while waiting here
"""


def test_killed_clients_session_reservations_come_back_at_the_front(
        tmp_path: Path, redis_url: str) -> None:
    with RedisMessageQueue(redis_url) as mq, Child(tmp_path, CHILD, redis_url, SESSION) as child:
        q_ids = [mq.add("q", f"q{i}") for i in range(5)]
        w_ids = mq.add_many("w", ["w0", "w1"])
        held = child.expect("held")
        assert held == [f"q:{q_ids[0]}:2", f"q:{q_ids[1]}:1", f"q:{q_ids[2]}:1",
                        f"w:{w_ids[0]}:1", f"w:{w_ids[1]}:1"]
        # alive, the child keeps its reservations over several session leases
        time.sleep(2 * SESSION)
        assert [m.id for m in mq.messages("q")] == q_ids[3:]
        assert mq.stats("q").reserved == 3 and mq.count("w") == 0

        child.kill()
        # a caller blocked on w (nothing ready there) gets the lapsed reservation
        m = mq.reserve("w", timeout=WAIT)
        assert (m.id, m.body, m.attempts) == (w_ids[0], "w0", 2)
        assert [(x.id, x.attempts) for x in mq.messages("w")] == [(w_ids[1], 1)]

        wait_for(lambda: mq.count("q") == 5, "the killed client's reservations of q back")
        assert [(x.id, x.body, x.attempts) for x in mq.messages("q")] == [
            (q_ids[0], "q0", 2), (q_ids[1], "q1", 1), (q_ids[2], "q2", 1),
            (q_ids[3], "q3", 0), (q_ids[4], "q4", 0)]
        assert mq.stats("q").reserved == 0
        mq.ack(m)
