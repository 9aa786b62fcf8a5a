"""The state file that lets the daemon restart without harm.

What survives a restart is :class:`~controller.core.records.SavedState` (each line's heat
budget, exchanger lag, production today and band usage, the operator's mode, the last
setpoints and the last plan).  :func:`save` writes it atomically (temporary file, fsync,
rename), so a crash mid-write leaves the previous file whole, and a write that fails (a full
disk) leaves no temporary file behind (one that a ``kill -9`` mid-write left is removed at
the next start, :func:`remove_stale_temporaries`); :func:`load` says why a file
cannot be used instead of raising.  The renewable forecasters' learning is kept beside it
(:func:`save_forecasters`, :func:`load_forecasters`), so a restart does not forecast cold.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from controller.core.records import STATE_VERSION, SavedState
from controller.site import SiteModel
from controller.supply import SupplyForecaster


@dataclass(frozen=True)
class Loaded:
    """A state file read: the state, or None with the reason (None and "" when there is none)."""

    state: SavedState | None
    problem: str = ""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SavedState)


def save(path: Path, state: SavedState) -> None:
    """Write ``state`` to ``path`` atomically: readers see the old file or the new, never half."""
    write_atomic(path, encode_state(state))


def encode_state(state: SavedState) -> bytes:
    return _encoder.encode(state)


def write_atomic(path: Path, data: bytes) -> None:
    """Temporary file (readable by the owner only), fsync, rename, fsync of the directory.

    Raises:
        OSError: the file could not be written; the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files :func:`write_atomic` left beside ``path`` when a process was
    killed mid-write (``.<name>.<pid>.tmp`` of a process that no longer runs); returns them.
    Harmless otherwise (the real file is replaced atomically), but they would pile up."""
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid_text = tmp.name.removeprefix(f".{path.name}.").removesuffix(".tmp")
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _running(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, as another user's: not ours to judge
    return True


def forecasters_path(state_path: Path) -> Path:
    """Where the forecasters are kept: beside the state file (``state.json.forecasters``)."""
    return state_path.with_name(f"{state_path.name}.forecasters")


def save_forecasters(path: Path, data: bytes) -> None:
    """Write :meth:`SupplyForecaster.dumps` bytes atomically, readable by the owner only."""
    write_atomic(path, data)


@dataclass(frozen=True)
class LoadedForecasters:
    """The forecasters read and the plant time they were saved at, or None with the reason."""

    supply: SupplyForecaster | None
    saved_ts: float = 0.0
    problem: str = ""


def load_forecasters(path: Path, site: SiteModel) -> LoadedForecasters:
    """Read the forecasters kept by :func:`save_forecasters`.

    The file is a pickle, which runs code as it loads: it is read only if this user owns it
    and nobody else may write it (or its directory).  A file that cannot be used is moved
    aside (``.unreadable-<time>``)."""
    try:
        st = path.stat()
        parent = path.parent.stat()
    except FileNotFoundError:
        return LoadedForecasters(None)
    except OSError as exc:
        return LoadedForecasters(None, problem=f"forecasters {path} unreadable: {exc.strerror}")
    uid = os.getuid()
    if st.st_uid != uid or st.st_mode & 0o022 or parent.st_mode & 0o002:
        return LoadedForecasters(
            None,
            problem=f"forecasters {path} not loaded: it (or its directory) can be written by "
            "another user, and the file is a pickle, which runs code as it loads",
        )
    try:
        supply, saved_ts = SupplyForecaster.loads(site, path.read_bytes())
    except (OSError, ValueError) as exc:
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        try:
            os.replace(path, aside)
        except OSError:
            aside = path
        return LoadedForecasters(
            None, problem=f"forecasters {path} unusable ({str(exc)[:200]}); kept as {aside}"
        )
    return LoadedForecasters(supply, saved_ts)


def load(path: Path) -> Loaded:
    """Read the state file.  A file that cannot be used is moved aside (``.unreadable-<time>``)
    so that it can be inspected and is not retried at every start."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Loaded(None)
    except OSError as exc:
        return Loaded(None, f"state file {path} unreadable: {exc.strerror}")
    try:
        state = _decoder.decode(data)
        if state.version != STATE_VERSION:
            raise ValueError(f"version {state.version}, expected {STATE_VERSION}")
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        try:
            os.replace(path, aside)
        except OSError:
            aside = path
        return Loaded(None, f"state file {path} unreadable ({str(exc)[:200]}); kept as {aside}")
    return Loaded(state)
