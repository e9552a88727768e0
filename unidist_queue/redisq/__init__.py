"""RedisMessageQueue: the queue API over a Redis server (the extra ``unidist_queue[redis]``).

Imported on first use of ``unidist_queue.RedisMessageQueue``, so that importing
``unidist_queue`` never imports redis.
"""

from .queue import RedisMessageQueue as RedisMessageQueue

__all__ = ["RedisMessageQueue"]
