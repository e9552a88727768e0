"""What the Redis queue tests share besides their fixtures (``rmq``, ``other``: tests/conftest.py)."""

from __future__ import annotations

SHORT = 0.3
"""A delay or lease that passes within a test; waits for it are bounded by doorbell_helpers.WAIT."""
