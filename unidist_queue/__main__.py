"""``python -m unidist_queue``: runs :func:`unidist_queue.cli.main` (see :mod:`unidist_queue.cli`)."""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
