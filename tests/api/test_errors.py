"""The exception hierarchy: what pickling and the stdlib bases give a user (DESIGN.md section 2)."""

from __future__ import annotations

import pickle
import queue

import pytest

from unidist_queue import CorruptArchive, ShutDown, StoreError, StoreLocked, UnidistQueueError


@pytest.mark.parametrize("offset", [None, 0, 1234])
def test_corrupt_archive_pickles_with_its_path_and_offset(offset: object) -> None:
    error = CorruptArchive("bad record", "/data/archive.3", offset)  # type: ignore[arg-type]
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is CorruptArchive
    assert (str(back), back.path, back.offset) == ("bad record", "/data/archive.3", offset)
    assert isinstance(back, StoreError)


def test_store_errors_pickle_and_keep_their_class() -> None:
    for error in (StoreError("disk full"), StoreLocked("held"), ShutDown("closed")):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)
        assert isinstance(back, UnidistQueueError)


def test_shutdown_is_the_stdlib_one_where_it_exists() -> None:
    if hasattr(queue, "ShutDown"):  # Python 3.13+
        assert issubclass(ShutDown, queue.ShutDown)
    assert issubclass(ShutDown, UnidistQueueError)
