"""Damage found by ``dump`` or ``compact`` is exit status 1, as for ``verify``; with
``--salvage`` they read past mid-file damage and report each skipped stretch."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import pytest
from cli_helpers import error_line, make_store, picture, run

from unidist_queue.store.archive import HEADER


@pytest.fixture
def damaged(tmp_path: Path) -> Tuple[str, int, int]:
    """A store whose third record is damaged, valid records after it: ``(path, offset of
    the damage, its size)``."""
    path = make_store(tmp_path / "s", n=6)
    archive = Path(path, "archive.0")
    data = bytearray(archive.read_bytes())
    offsets = []
    off = HEADER.size
    while off < len(data):
        offsets.append(off)
        off += 16 + int.from_bytes(data[off : off + 4], "little")
    data[offsets[2] + 20] ^= 0xFF
    archive.write_bytes(bytes(data))
    return path, offsets[2], offsets[3] - offsets[2]


@pytest.mark.parametrize("command", ["dump", "compact"])
def test_damage_without_salvage_is_exit_status_1_and_changes_nothing(
    damaged: Tuple[str, int, int], command: str
) -> None:
    path, offset, _ = damaged
    before = picture(Path(path))
    line = error_line(run(command, path), status=1)
    assert line.startswith(f"error: {Path(path, 'archive.0')}: damaged record at offset {offset} followed")
    assert picture(Path(path)) == before
    done = run("verify", path)
    assert done.returncode == 1 and done.stdout.splitlines()[-1] == "damage found"


def test_dump_salvage_reports_what_it_skips(damaged: Tuple[str, int, int]) -> None:
    path, offset, size = damaged
    before = picture(Path(path))
    done = run("dump", path, "--salvage")
    assert done.returncode == 1
    assert done.stderr == f"salvage: skipped {size} bytes of {Path(path, 'archive.0')} at offset {offset}\n"
    bodies = [line.split("\t")[3] for line in done.stdout.splitlines()]
    assert len(bodies) == 6 and "'x'" in bodies  # one of the seven messages lost
    assert picture(Path(path)) == before


def test_compact_salvage_keeps_what_it_can_read(damaged: Tuple[str, int, int]) -> None:
    path, offset, size = damaged
    dumped = run("dump", path, "--salvage").stdout
    done = run("compact", path, "--salvage")
    assert done.returncode == 1
    assert done.stderr == f"salvage: skipped {size} bytes of {Path(path, 'archive.0')} at offset {offset}\n"
    assert done.stdout.startswith(f"compacted {path}: ")
    assert run("verify", path).returncode == 0
    again = run("dump", path)
    assert again.returncode == 0 and again.stdout == dumped


def test_dump_salvage_reports_a_sequence_gap(tmp_path: Path) -> None:
    """A whole record gone (valid records on both sides): records are missing, no bytes skipped."""
    path = make_store(tmp_path / "s", n=6)
    archive = Path(path, "archive.0")
    data = archive.read_bytes()
    offsets, off = [], HEADER.size
    while off < len(data):
        offsets.append(off)
        off += 16 + int.from_bytes(data[off : off + 4], "little")
    archive.write_bytes(data[: offsets[3]] + data[offsets[4] :])
    assert "expected" in error_line(run("dump", path), status=1)
    done = run("dump", path, "--salvage")
    assert done.returncode == 1 and len(done.stdout.splitlines()) == 6
    assert done.stderr == f"salvage: records missing before offset {offsets[3]} of {archive} (sequence gap)\n"


def test_the_library_warnings_are_lines_of_their_own(tmp_path: Path) -> None:
    path = make_store(tmp_path / "s")
    Path(path, "archive.1").write_bytes(b"")  # as a crash right after creating it leaves it
    done = run("dump", path)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 4
    assert done.stderr == f"warning: {Path(path, 'archive.1')} is empty (0 bytes); ignoring it\n"
