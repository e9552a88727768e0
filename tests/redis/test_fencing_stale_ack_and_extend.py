"""Fencing by attempts and lease across processes (DESIGN 3 ``extend``, DESIGN 12).

* A holder whose lease lapsed, and whose message another process reserved since, is no
  longer the holder: its ``ack``, ``nack`` and ``extend`` are ``ValueError`` and change
  nothing; the new holder settles normally.
* ``extend`` keeps a long task single: while the child keeps extending a short lease,
  for several leases, a ``reserve`` blocked in the parent gets nothing; the message is
  delivered once.
* ``extend`` of a session reservation (``lease=None``) gives it a fixed end: it is no
  longer renewed, and comes back when that end passes although its client lives.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from procs_helpers import WAIT, Child

from unidist_queue import Empty
from unidist_queue.redisq import RedisMessageQueue

STALE = r"""
url = sys.argv[1]
mq = RedisMessageQueue(url)
m = mq.reserve("q", timeout=10, lease=0.3)
print("reserved", m.id, m.attempts, flush=True)
sys.stdin.readline()  # the parent reserved it again meanwhile
for name, call in [("ack", lambda: mq.ack(m)), ("nack", lambda: mq.nack(m)),
                   ("extend", lambda: mq.extend(m, 60)), ("ack_many", lambda: mq.ack_many([m]))]:
    try:
        call()
        print(name, "settled", flush=True)
    except ValueError:
        print(name, "ValueError", flush=True)
mq.close()
"""

LONG = r"""
import time
url, lease, hold = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
mq = RedisMessageQueue(url)
m = mq.reserve("q", timeout=10, lease=lease)
print("reserved", m.id, m.attempts, flush=True)
end = time.monotonic() + hold
while time.monotonic() < end:
    mq.extend(m, lease)
    time.sleep(lease / 10)
mq.ack(m)
print("acked", m.attempts, flush=True)
mq.close()
"""


def test_stale_ack_after_a_re_reservation_is_a_value_error(tmp_path: Path, redis_url: str) -> None:
    with RedisMessageQueue(redis_url) as mq, Child(tmp_path, STALE, redis_url) as child:
        msg_id = mq.add("q", "job")
        assert child.expect("reserved") == [str(msg_id), "1"]
        again = mq.reserve("q", timeout=WAIT, lease=600)  # after the child's lease lapsed
        assert (again.id, again.attempts) == (msg_id, 2)
        child.send("go")
        for name in ("ack", "nack", "extend", "ack_many"):
            assert child.expect(name) == ["ValueError"]
        child.finish()
        stats = mq.stats("q")
        assert (stats.ready, stats.reserved, stats.removed) == (0, 1, 0)
        mq.ack(again)
        assert mq.stats("q").removed == 1


def test_extend_keeps_a_long_task_single(tmp_path: Path, redis_url: str) -> None:
    lease = 0.6
    with RedisMessageQueue(redis_url) as mq, Child(tmp_path, LONG, redis_url, lease, 4 * lease) as child:
        msg_id = mq.add("q", "long job")
        assert child.expect("reserved") == [str(msg_id), "1"]
        with pytest.raises(Empty):
            mq.reserve("q", timeout=4 * lease)  # while the child holds it for 4 leases
        assert child.expect("acked") == ["1"]
        child.finish()
        stats = mq.stats("q")
        assert (stats.ready, stats.reserved, stats.removed) == (0, 0, 1)


def test_extend_gives_a_session_reservation_a_fixed_end(redis_url: str) -> None:
    with RedisMessageQueue(redis_url, session_lease=0.5) as holder, RedisMessageQueue(redis_url) as mq:
        msg_id = mq.add("q", "job")
        m = holder.reserve("q", timeout=WAIT)
        holder.extend(m, 1.0)
        again = mq.reserve("q", timeout=WAIT)  # once the fixed end passed; holder alive
        assert (again.id, again.attempts) == (msg_id, 2)
        with pytest.raises(ValueError):
            holder.ack(m)
        mq.ack(again)
