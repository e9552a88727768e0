"""Serializers: every failure to encode is a SerializationError, and nothing is stored."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, List

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unidist_queue import FileStore, MessageQueue, SerializationError
from unidist_queue.store.serializers import JsonSerializer, PickleSerializer, Serializer, by_id, by_name


def nested(depth: int) -> List[Any]:
    value: List[Any] = []
    for _ in range(depth):
        value = [value]
    return value


class Unpicklable:
    def __reduce__(self) -> Any:
        raise RuntimeError("refuses to be pickled")


@pytest.mark.parametrize(
    "body",
    [lambda: 0, threading.Lock(), Unpicklable(), nested(100_000)],
    ids=["lambda", "lock", "reduce", "deep"],
)
def test_pickle_failures_become_serialization_errors(body: Any) -> None:
    with pytest.raises(SerializationError, match="cannot pickle"):
        PickleSerializer().dumps(body)


def test_json_too_deep_is_a_serialization_error_and_nothing_is_stored(tmp_path: Path) -> None:
    with MessageQueue(store=FileStore(tmp_path / "s", serializer="json", fsync="never")) as mq:
        with pytest.raises(SerializationError, match="JSON"):
            mq.add("q", nested(100_000))
        assert mq.count("q") == 0
        mq.add("q", nested(10))
    with MessageQueue(store=FileStore(tmp_path / "s", serializer="json", fsync="never")) as mq:
        assert mq.all("q") == [nested(10)]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({1}, "set"),
        (b"x", "bytes"),
        ({1: "a"}, "keys must be str"),
        (float("nan"), "nan"),
        ([object()], "object"),
    ],
)
def test_json_refuses_what_would_come_back_changed(body: Any, why: str) -> None:
    with pytest.raises(SerializationError, match=why):
        JsonSerializer().dumps(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_json_round_trips_what_it_accepts(value: Any) -> None:
    ser = JsonSerializer()
    assert ser.loads(memoryview(ser.dumps(value))) == value


def test_serializers_are_found_by_name_and_id_and_the_base_is_abstract() -> None:
    for name, ident in (("pickle", 1), ("json", 2)):
        assert by_name(name) is by_id(ident)
        assert (by_name(name).name, by_name(name).ident) == (name, ident)
    with pytest.raises(ValueError, match="serializer must be one of"):
        by_name("yaml")
    with pytest.raises(KeyError):
        by_id(99)
    with pytest.raises(TypeError):
        Serializer()  # type: ignore[abstract]
