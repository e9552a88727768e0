"""What the RedisMessageQueue tests share: clients on the test server, closed afterwards.

``from rq_helpers import rmq, other`` makes the fixtures available in a test module.
Waits use deadlines (doorbell_helpers.WAIT), never timing thresholds.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from unidist_queue import RedisMessageQueue

SHORT = 0.3  # a delay or lease that passes within a test; waits for it are bounded by WAIT


@pytest.fixture
def rmq(redis_url: str) -> Iterator[RedisMessageQueue]:
    """A RedisMessageQueue on the flushed test server, closed after the test."""
    with RedisMessageQueue(redis_url) as queue:
        yield queue


@pytest.fixture
def other(redis_url: str) -> Iterator[RedisMessageQueue]:
    """A second client of the same namespace (another process would behave the same)."""
    with RedisMessageQueue(redis_url) as queue:
        yield queue
