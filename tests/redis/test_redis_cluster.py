"""A namespace on a three-master Redis Cluster, through a RedisCluster passed as ``client=``."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from doorbell_helpers import WAIT, in_thread
from redisserver import Cluster

from unidist_queue import RedisMessageQueue


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


def test_the_queue_api_on_a_cluster(cluster: Cluster) -> None:
    from redis.cluster import RedisCluster

    client = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    client2 = RedisCluster(host="127.0.0.1", port=cluster.ports[1])
    try:
        with RedisMessageQueue(client=client, namespace="c1") as mq, \
                RedisMessageQueue(client=client2, namespace="c1") as mq2:
            assert mq.stats("q").durable is False
            ids = mq.add_many("q", [1, 2, 3])
            assert mq2.all("q") == [1, 2, 3] and ids == sorted(ids)
            m = mq2.reserve("q")
            mq.nack(m, delay=0.2)
            mq2.declare("d", max_attempts=1, dead_letter="dead")
            mq2.add("d", "x")
            mq2.nack(mq2.reserve("d", lease=60))
            assert mq.all("dead") == ["x"]
            fut = in_thread(lambda: mq.get("w", timeout=WAIT))
            mq2.add("w", "woken")
            assert fut.result(WAIT) == "woken"
            assert mq.get("q", timeout=WAIT) == 2
            assert sorted(mq.queues()) == ["d", "dead", "q", "w"]
        with RedisMessageQueue(client=client, namespace="c2") as mq3:
            mq3.add("q", "elsewhere")
            assert mq3.all("q") == ["elsewhere"]
    finally:
        client.close()
        client2.close()


def test_cluster_paths(tmp_path: Path) -> None:
    """The namespace's keys share one hash slot (the tag), whatever the queue name."""
    from redis.cluster import key_slot

    slots = {key_slot(f"uq:{{ns}}:q:{name}:ready".encode()) for name in ("a", "b", "{x}", "é")}
    assert len(slots) == 1
