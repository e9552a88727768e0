"""Value objects: the MISSING sentinel and the frozen envelopes (DESIGN.md section 3)."""

from __future__ import annotations

import copy
import pickle

import attrs
import pytest

from unidist_queue import Message, QueueStats
from unidist_queue.message import MISSING


def test_missing_is_a_named_singleton_that_survives_pickle_and_copy() -> None:
    assert repr(MISSING) == "MISSING"
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert copy.deepcopy(MISSING) is MISSING
    assert copy.copy(MISSING) is MISSING


def test_envelopes_are_frozen_hashable_and_pickle() -> None:
    m = Message(1, "q", {"a": 1}, 12.5)
    assert m.attempts == 0
    assert pickle.loads(pickle.dumps(m)) == m
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        m.id = 2  # type: ignore[misc]
    s = QueueStats(1, 2, 3, 4, 5, 6, 7, 8, True)
    assert hash(s) == hash(QueueStats(1, 2, 3, 4, 5, 6, 7, 8, True))
    assert pickle.loads(pickle.dumps(s)) == s
