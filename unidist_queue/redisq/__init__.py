"""RedisMessageQueue: the queue API with its state in Redis (issue 15)."""
