"""``python -m unidist_queue demo``: the library at work in a few seconds."""

from __future__ import annotations

import sys
from typing import List, Optional, TextIO

from .queues import MessageQueue


def main(argv: Optional[List[str]] = None, out: TextIO = sys.stdout) -> int:
    """Run the demo, writing progress to ``out``; return the exit status."""
    with MessageQueue() as mq:
        for i in range(5):
            mq.add("jobs", f"job {i}")
        out.write(f"queued {mq.count('jobs')} jobs\n")
        msg = mq.reserve("jobs")
        out.write(f"reserved {msg.body!r} (attempt {msg.attempts}); nack puts it back\n")
        mq.nack(msg)
        while mq.count("jobs"):
            out.write(f"took {mq.oldest('jobs')!r}\n")
    return 0
