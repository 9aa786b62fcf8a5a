"""Typed TOML files with errors that name the key: the config file both sides read, and
the site and scenario files.

The daemon and the simulator share one config file (each reads its own tables and the
``[mqtt]`` table of the broker link, :class:`wire.link.MqttSettings`), so the loader that turns
a table into a frozen Struct, and reports a bad key with its name, value and reason, is here
beside the link settings rather than on either side.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec

T = TypeVar("T")


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


def convert(raw: Mapping[str, Any], type_: type[T], source: str = "") -> T:
    """Convert parsed TOML (or any mapping) into a frozen Struct (or a dataclass), or raise
    :class:`FileError`."""
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
        if value is _MISSING:  # a required key, or a cross-field check on a default
            value = "(missing)" if missing else "(not set)"
        if unknown:
            reason = "unknown key (misspelt, or not valid here)"
        raise FileError(source, key, value, reason) from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing file and syntax errors are reported as FileError."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileError(str(p), "(file)", str(p), "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise FileError(str(p), "(syntax)", None, f"not valid TOML: {exc}") from None


def load_toml(path: str | Path, type_: type[T]) -> T:
    """Read a TOML file into a validated Struct; syntax errors are reported as FileError too."""
    return convert(read_toml(path), type_, str(path))


def dumps_toml(data: Mapping[str, Any]) -> str:
    """TOML text for plain data (what ``msgspec.to_builtins`` gives): scalars and lists of
    scalars as ``key = value``, mappings as ``[tables]``, lists of mappings as ``[[arrays of
    tables]]``; None values are left out.  Floats are written exactly (``repr``), so the text
    reads back to the same numbers."""
    lines: list[str] = []
    _dump_table(data, (), lines)
    return "\n".join(lines).strip("\n") + "\n"


def _dump_table(data: Mapping[str, Any], path: tuple[str, ...], out: list[str]) -> None:
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, Mapping) or (
            isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value)
        ):
            tables.append((key, value))
        else:
            out.append(f"{_key(key)} = {_scalar(value)}")
    for key, value in tables:
        name = ".".join(_key(k) for k in (*path, key))
        for table in [value] if isinstance(value, Mapping) else value:
            out.extend(["", f"[{name}]" if isinstance(value, Mapping) else f"[[{name}]]"])
            _dump_table(table, (*path, key), out)


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _string(key)


def _string(text: str) -> str:
    # JSON's escapes are TOML's basic-string escapes (not its surrogate pairs: the text is
    # UTF-8, other characters are written as they are); TOML also forbids a raw DEL
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


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
