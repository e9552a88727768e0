"""The command line: ``python -m unidist_queue COMMAND PATH [options]`` (DESIGN section 9).

* ``inspect PATH``: the store's files and sizes, its queues and their counts.
* ``verify PATH``: check every snapshot and record; exit status 1 on damage, 0 (with a
  note) when only a torn tail was found, which opening the store would cut. Only the
  end of the history can be torn: a damaged tail in an archive that records in a newer
  archive follow is damage.
* ``compact PATH [--salvage]``: write a snapshot and shorten the archive (takes the
  store's lock).
* ``dump PATH [--queue Q] [--json] [--salvage]``: the ready messages, one per line.
* ``demo``: a short run of the library. ``--version``: ``unidist_queue X.Y.Z``.

PATH must be a store: a directory holding a snapshot or an archive written by
:class:`~unidist_queue.FileStore` (checked by name and magic bytes, see
:mod:`unidist_queue.store.probe`); anything else is refused before a file is created or
changed. The serializer is read from the files. ``--hmac-key-env VAR`` names the
environment variable holding the HMAC key of a signed store (its value as UTF-8 bytes).
``inspect``, ``verify`` and ``dump`` only read (no lock, nothing changed) and may run
while another process holds the store; on a pickle store without a key they unpickle
the files, which runs code from them.

Exit statuses: 0 done; 1 damage found (by ``verify``, ``dump`` or ``compact``, also
when ``--salvage`` read past it); 2 the command could not run (not a store, a missing
or wrong key, an unknown queue, a store held by another process for ``compact``, a bad
argument, an unexpected error). Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

from .app import main

__all__ = ["main"]
