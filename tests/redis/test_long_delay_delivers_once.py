"""A delay much longer than a lease delivers once (DESIGN 12; kombu#337, dramatiq#431).

The parent adds a message with a delay of several times the consumers' lease; two
consumers (each its own client, in a child process) keep reserving with that short lease
and ack at once what they get. The message is delivered exactly once, with ``attempts``
1, not before it is due (the server's clock, read right after the delivery).
"""

from __future__ import annotations

from pathlib import Path

from procs_helpers import Child

from unidist_queue.redisq import RedisMessageQueue

DELAY = 1.2
LEASE = 0.2

CHILD = r"""
import threading, time
import redis
from unidist_queue import Empty
url, lease, until = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
raw = redis.Redis.from_url(url)
out = threading.Lock()


def consume(me):
    with RedisMessageQueue(url) as mq:
        end = time.monotonic() + until
        while (left := end - time.monotonic()) > 0:
            try:
                m = mq.reserve("q", timeout=left, lease=lease)
            except Empty:
                continue
            secs, micros = raw.time()
            mq.ack(m)
            with out:
                print("delivered", m.id, m.attempts, repr(m.enqueued_at), secs + micros / 1e6, flush=True)


ts = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
for t in ts:
    t.start()
print("consuming", flush=True)
for t in ts:
    t.join(60)
    assert not t.is_alive()
print("done", flush=True)
raw.close()
"""


def test_a_delay_much_longer_than_the_lease_delivers_once(tmp_path: Path, redis_url: str) -> None:
    with RedisMessageQueue(redis_url) as mq, \
            Child(tmp_path, CHILD, redis_url, LEASE, DELAY + 6 * LEASE) as child:
        child.expect("consuming")
        msg_id = mq.add("q", "later", delay=DELAY)
        deliveries = []
        while (line := child.line()) != "done":
            deliveries.append(line.split()[1:])
        child.finish()
        assert len(deliveries) == 1, deliveries
        got_id, attempts, enqueued_at, server_now = deliveries[0]
        assert (int(got_id), int(attempts)) == (msg_id, 1)
        assert float(server_now) >= float(enqueued_at) + DELAY - 0.001
        stats = mq.stats("q")
        assert (stats.ready, stats.delayed, stats.reserved, stats.removed) == (0, 0, 0, 1)
