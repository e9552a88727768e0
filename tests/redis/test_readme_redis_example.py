"""README's "Scaling out with Redis" example runs as written: its producer and consumer,
each a real process, against the test session's private server (only the URL changes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import List

from conftest import REPO, child_env
from helpers import WAIT


def blocks() -> List[str]:
    """The Python blocks of README's "Scaling out with Redis" section."""
    with open(os.path.join(REPO, "README.rst"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("Scaling out with Redis\n======================", 1)[1].split("\n=====", 1)[0]
    found = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", section)
    return [re.sub(r"^    ", "", block, flags=re.M) for block in found]


def test_the_producer_and_the_consumer_of_the_readme_run(redis_url: str) -> None:
    producer, consumer = blocks()
    assert producer.startswith("# producer.py") and consumer.startswith("# consumer.py")
    env = child_env()
    runs = []
    for code in (consumer, producer):  # the consumer waits for the producer's adds
        code = code.replace("redis://127.0.0.1:6379/0", redis_url)
        runs.append(subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=REPO))
    outputs = [run.communicate(timeout=WAIT) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert outputs[0][0].splitlines() == ["doing wash", "doing dry"]
