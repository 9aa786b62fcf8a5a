"""The on-disk spool: order, cap with an exact drop count, crash leftovers, restarts."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from controller.tsdb.spool import Spool


def lines(first: int, count: int) -> list[str]:
    """Distinct lines of 20 bytes on disk (19 and the newline)."""
    return [f"m v={i}i".ljust(17) + " 1" for i in range(first, first + count)]


def drain(spool: Spool, batch: int = 7) -> list[str]:
    out: list[str] = []
    while chunk := spool.peek(batch):
        out.extend(chunk)
        assert spool.commit() == len(chunk)
    return out


def test_lines_come_out_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)  # segments of 1,250 bytes: 63 lines
    written = lines(0, 300)
    for start in range(0, 300, 25):
        assert spool.append(written[start : start + 25]) == 0
    assert len(list(tmp_path.glob("*.lp"))) > 3
    assert spool.points == 300
    assert drain(spool) == written
    assert spool.points == 0 and spool.size_bytes == 0
    assert list(tmp_path.glob("*.lp")) == []
    assert spool.dropped == 0


def test_a_peek_without_commit_removes_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append(lines(0, 10))
    first = spool.peek(4)
    assert spool.peek(4) == first  # a failed delivery: the same lines are offered again
    spool.commit()
    assert spool.peek(100) == lines(4, 6)


def test_over_the_cap_the_oldest_segments_go_and_every_lost_line_is_counted(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_bytes=4000)  # 200 lines of 20 bytes; segments of 500 bytes
    total = 0
    dropped = 0
    for start in range(0, 1000, 30):
        batch = lines(start, min(30, 1000 - start))
        dropped += spool.append(batch)
        total += len(batch)
        assert spool.size_bytes <= 4000
    assert dropped == spool.dropped > 0
    kept = drain(spool)
    assert len(kept) + dropped == total == 1000
    # what is kept is the newest, without gaps
    assert kept == lines(1000 - len(kept), len(kept))


def test_the_drop_count_includes_lines_of_a_partly_replayed_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=400)  # 20 lines; segments of 50 bytes (3 lines)
    spool.append(lines(0, 18))
    delivered = spool.peek(5)
    spool.commit()
    dropped = spool.append(lines(18, 10))
    assert dropped == spool.dropped
    kept = drain(spool)
    assert len(delivered) + dropped + len(kept) == 28
    assert delivered + kept == lines(0, 5) + lines(28 - len(kept), len(kept))


def test_a_batch_larger_than_the_cap_keeps_its_newest_lines(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    assert spool.append(lines(0, 12)) == 7
    assert drain(spool) == lines(7, 5)


def test_after_a_restart_old_segments_are_replayed_first_and_a_torn_line_is_skipped(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append(lines(0, 10))
    segment = sorted(tmp_path.glob("*.lp"))[-1]
    with segment.open("ab") as f:
        f.write(b"m v=99i 1")  # the process died in the middle of a write
    reopened = Spool(tmp_path, max_bytes=10_000)
    assert reopened.points == 10
    reopened.append(lines(10, 5))
    assert drain(reopened, batch=4) == lines(0, 15)
    assert reopened.dropped == 1
    assert list(tmp_path.glob("*.lp")) == []


def test_a_partly_replayed_spool_replays_the_rest_after_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append(lines(0, 10))
    spool.peek(3)
    spool.commit()
    # the offset is not persisted: delivered lines may come again (same series and time:
    # stored once), never fewer
    again = drain(Spool(tmp_path, max_bytes=10_000))
    assert again[-7:] == lines(3, 7)
    assert set(again) <= set(lines(0, 10))


def test_files_that_are_not_segments_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    spool = Spool(tmp_path, max_bytes=1000)
    spool.append(lines(0, 2))
    drain(spool)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_a_cap_below_one_byte_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        Spool(tmp_path, max_bytes=0)


class _DiskFullAfter:
    """A segment file on a disk that fills after ``room`` more bytes: the write puts that
    much down, then fails as a full disk does (ENOSPC)."""

    def __init__(self, path: Path, room: int) -> None:
        self._f = open(path, "ab")  # noqa: SIM115 (closed by __exit__)
        self._room = room

    def write(self, data: bytes) -> int:
        self._f.write(data[: self._room])
        self._f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self) -> _DiskFullAfter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


@pytest.mark.parametrize("room", [0, 7, 20, 33])
def test_a_write_that_fills_the_disk_leaves_no_part_of_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, room: int
) -> None:
    """Half a line (room 7, 33) or a whole line of the failed batch (20) must not stay: the
    next batch would be joined to the torn line, or a line counted as dropped delivered."""
    spool = Spool(tmp_path, 10_000)
    spool.append(lines(0, 3))
    real_open = Path.open

    def full_disk(self: Path, mode: str = "r", *args: object, **kwargs: object) -> object:
        if mode == "ab":
            return _DiskFullAfter(self, room)
        return real_open(self, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", full_disk)
    with pytest.raises(OSError):
        spool.append(lines(3, 2))
    monkeypatch.undo()
    assert spool.points == 3
    spool.append(lines(5, 2))
    assert drain(spool) == lines(0, 3) + lines(5, 2)
    assert spool.dropped == 0  # the failed batch is the caller's to count
    reopened = Spool(tmp_path, 10_000)
    assert reopened.points == 0 and reopened.dropped == 0


def test_old_segments_dropped_for_a_write_that_then_fails_are_still_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap makes room first (old segments go), then the write fails on a full disk: the
    lines of the old segments are gone and must be counted; the failed batch is the caller's."""
    spool = Spool(tmp_path, 100)  # 5 lines of 20 bytes; segments of 12 bytes: one per append
    for i in range(5):
        spool.append(lines(i, 1))
    assert spool.points == 5
    real_open = Path.open

    def full_disk(self: Path, mode: str = "r", *args: object, **kwargs: object) -> object:
        if mode == "ab":
            return _DiskFullAfter(self, 0)
        return real_open(self, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", full_disk)
    with pytest.raises(OSError):
        spool.append(lines(5, 2))  # 40 bytes: two old lines make room
    monkeypatch.undo()
    assert spool.points == 3
    assert spool.dropped == 2
    assert drain(spool) == lines(2, 3)
