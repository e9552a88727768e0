"""Command line: ``python -m unidist_queue demo``.

The store commands of DESIGN.md section 9 (inspect, verify, compact, dump) arrive with
the FileStore.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` and run the command; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m unidist_queue")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="show the library at work for a few seconds")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import main as demo

        return demo()
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
