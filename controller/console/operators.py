"""The operators' credentials: who may change the mode from the console.

The config file names a place, never a secret: ``[controller] operator_tokens_file`` is a file
with one operator a line, ``name:token`` (``#`` starts a comment); without it, the environment
variable :data:`TOKEN_ENV` holds one token (``name:token``, or a bare token for an operator
called ``operator``).  With neither, the console is read-only.  A request carries its token as
``Authorization: Bearer TOKEN``; it is compared in constant time, and the operator's name is
what the event log says did it.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from wire.tomlfile import FileError, read_secret_file

TOKEN_ENV: Final = "SMELTER_OPERATOR_TOKEN"
MIN_TOKEN_CHARS: Final = 12
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True)
class Operators:
    tokens: tuple[tuple[str, bytes], ...] = ()
    """(name, token) of each operator."""

    @property
    def enabled(self) -> bool:
        """Whether anyone may change the mode (else the console is read-only)."""
        return bool(self.tokens)

    def who(self, authorization: str | None) -> str | None:
        """The operator whose token ``authorization`` (an HTTP header) carries, or None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        given = authorization[len("Bearer ") :].strip().encode()
        found = None
        for name, token in self.tokens:  # every token compared: the time says nothing
            if hmac.compare_digest(given, token):
                found = name
        return found


def load_operators(path: str, environ: Mapping[str, str]) -> Operators:
    """From ``path`` (the config's ``operator_tokens_file``) if set, else from :data:`TOKEN_ENV`.

    Raises:
        FileError: the file is unreadable or a line is not ``name:token`` with a token of at
            least :data:`MIN_TOKEN_CHARS` characters (the line number is named, never the token).
    """
    key = "controller.operator_tokens_file"
    if path:
        lines = read_secret_file(path, key).splitlines()
        where = path
    else:
        value = environ.get(TOKEN_ENV, "").strip()
        if not value:
            return Operators()
        lines = [value if ":" in value else f"operator:{value}"]
        key, where = TOKEN_ENV, "environment"
    tokens = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.partition(":")
        if not sep or not NAME.match(name.strip()):
            raise FileError("", key, where, f"line {n}: expected name:token")
        if len(token.strip()) < MIN_TOKEN_CHARS:
            raise FileError(
                "", key, where, f"line {n}: the token must have at least {MIN_TOKEN_CHARS} chars"
            )
        tokens.append((name.strip(), token.strip().encode()))
    return Operators(tuple(tokens))
