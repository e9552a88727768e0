"""The command line: ``python -m unidist_queue demo`` runs and exits 0."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "unidist_queue", "demo"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "queued 5 jobs" in done.stdout
