"""The site file: the plant the daemon controls, in TOML (docs/configuration.md).

Its schema is :class:`controller.site.SiteModel` and the asset types beside it: every key is a
field there, with its unit, default and bounds.  One check is made here rather than by msgspec:
a file must state the site's position and time zone, which the type defaults only for tests and
backtests built in code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import msgspec

from controller.site import SiteModel
from wire.tomlfile import FileError, convert, dumps_toml, read_toml

STATED_KEYS: Final = ("latitude_deg", "longitude_deg", "utc_offset_h")
"""Keys a site file must state although the type has a default: the sun's position and the
local hours of tariffs and production days are never assumed."""


def load_site(path: str | Path) -> SiteModel:
    """Read and validate a site file.

    Raises:
        FileError: the file is missing, not TOML, or has a bad key (key, value and reason).
    """
    source = str(path)
    raw = read_toml(path)
    for key in STATED_KEYS:
        if key not in raw:
            raise FileError(source, key, "(missing)", "a site file must state it")
    return convert(raw, SiteModel, source)


def site_toml(site: SiteModel) -> str:
    """The site as a site file that :func:`load_site` reads back to an equal :class:`SiteModel`
    (every key written, hour sets sorted)."""
    return dumps_toml(msgspec.to_builtins(site, order="deterministic"))
