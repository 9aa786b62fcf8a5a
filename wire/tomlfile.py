"""Typed TOML files with errors that name the key: the config file both sides read, and
the site and scenario files.

The daemon and the simulator share one config file (each reads its own tables and the
``[mqtt]`` table of the broker link, :class:`wire.link.MqttSettings`), so the loader that turns
a table into a frozen Struct, and reports a bad key with its name, value and reason, is here
beside the link settings rather than on either side.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec

P = TypeVar("P", bound=msgspec.Struct)


class FileError(Exception):
    """A bad TOML file: names the file, the key, the offending value and the reason."""

    def __init__(self, source: str, key: str, value: object, reason: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        where = f"{source}: " if source else ""
        super().__init__(f"{where}key '{key}' = {shown}: {reason}")
        self.source = source
        self.key = key
        self.value = value
        self.reason = reason


_MISSING: Final = object()
_PATH_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")


def _lookup(raw: object, path: str) -> tuple[str, object]:
    """Follow a msgspec error path (``$.potline[0].pots``) into the raw data."""
    key_parts: list[str] = []
    node: object = raw
    for name, index in _PATH_TOKEN.findall(path.removeprefix("$")):
        if name:
            key_parts.append(name)
            node = node.get(name, _MISSING) if isinstance(node, Mapping) else _MISSING
        else:
            key_parts[-1:] = [f"{key_parts[-1] if key_parts else ''}[{index}]"]
            i = int(index)
            node = node[i] if isinstance(node, list) and i < len(node) else _MISSING
    return ".".join(key_parts) or "(top level)", node


def convert(raw: Mapping[str, Any], type_: type[P], source: str = "") -> P:
    """Convert parsed TOML (or any mapping) into a frozen Struct, or raise :class:`FileError`."""
    try:
        return msgspec.convert(raw, type_, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        reason, _, path = text.partition(" - at `")
        path = path.rstrip("`")
        missing = re.search(r"missing required field `([^`]+)`", reason)
        unknown = re.search(r"unknown field `([^`]+)`", reason)
        cross = re.match(r"^([A-Za-z_]\w*): (.+)$", reason)
        if missing or unknown:
            field = (missing or unknown).group(1)  # type: ignore[union-attr]
            path = f"{path or '$'}.{field}"
        elif cross:
            # a __post_init__ check, written as "field: reason"
            path, reason = f"{path or '$'}.{cross.group(1)}", cross.group(2)
        key, value = _lookup(raw, path or "$")
        if value is _MISSING:
            value = "(missing)" if missing else None
        if unknown:
            reason = "unknown key (misspelt, or not valid here)"
        raise FileError(source, key, value, reason) from None


def load_toml(path: str | Path, type_: type[P]) -> P:
    """Read a TOML file into a validated Struct; syntax errors are reported as FileError too."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileError(str(p), "(file)", str(p), "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise FileError(str(p), "(syntax)", None, f"not valid TOML: {exc}") from None
    return convert(raw, type_, str(p))


# --- connection settings (shared by the daemon's and the simulator's config files) -----------


def read_secret_file(path: str, key: str) -> str:
    """A secret (password, API token) from the file the config key ``key`` names.

    Errors name the key and the file, never the secret (not even the byte a decode error
    would quote).  The final newline that ``echo secret > file`` and editors add is dropped.

    Raises:
        FileError: the file is missing, unreadable, not UTF-8 text or empty.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileError("", key, path, "file not found") from None
    except UnicodeDecodeError:
        raise FileError("", key, path, "file is not UTF-8 text") from None
    except OSError as exc:
        raise FileError("", key, path, f"cannot read the file: {exc.strerror}") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise FileError("", key, path, "file is empty")
    return secret
