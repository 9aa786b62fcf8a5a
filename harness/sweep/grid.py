"""The grid of a sweep: seeds, settings (``--set KEY=V1,V2``) and the cells they make.

A setting changes the planner or the site, and is checked against the same types as the config
file and the scenario file, so a bad one names its key and the reason before anything runs:

- ``planner.KEY=V1,V2``: a ``[planner]`` key of the config file
  (:class:`~controller.planner.types.PlannerConfig`);
- ``site.PATH=V1,V2``: a key of the scenario file, which both the simulated plant and the
  controller's site are made from.  PATH runs through tables: ``site.grid.import_limit_mw``,
  ``site.potline.physics.hx_range_frac``; a table that is a list of assets (``potline``,
  ``renewable``, ``bess``, ``captive``) sets the key on every asset.  ``site.bess_energy_mwh``
  is read as ``site.bess.energy_mwh``.

Each ``--set`` gives one axis; the settings are every combination of their values.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from controller.planner.types import PlannerConfig
from simulator.scenario import Scenario
from wire.tomlfile import FileError, convert

_SEEDS = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
MAX_CELLS = 100_000
"""More cells than this is a typing slip, not a sweep."""


class GridError(ValueError):
    """A bad ``--seeds`` or ``--set``: says which and why."""


@dataclass(frozen=True)
class Axis:
    """One ``--set``: a dotted key and the values to sweep."""

    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Setting:
    """One combination of the axes' values: ``(key, value)`` pairs in the order given."""

    pairs: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        return " ".join(f"{k}={_shown(v)}" for k, v in self.pairs) or "default"


def parse_seeds(text: str) -> list[int]:
    """``"1-20"``, ``"1,3,5-7"`` → the seeds, in order, each once."""
    seeds: list[int] = []
    for part in text.split(","):
        m = _SEEDS.match(part)
        if m is None:
            raise GridError(f"--seeds: {part.strip()!r} is not a seed or a range like 1-20")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else first
        if last < first:
            raise GridError(f"--seeds: the range {first}-{last} runs backwards")
        seeds += [s for s in range(first, last + 1) if s not in seeds]
    return seeds


def parse_axis(text: str) -> Axis:
    """``"planner.far_step_min=30,60"`` → an axis; values are read as TOML values (numbers,
    ``true``/``false``), anything else as a string."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise GridError(f"--set {text!r}: expected KEY=VALUE[,VALUE...]")
    if not key.startswith(("planner.", "site.")):
        raise GridError(f"--set {key}: the key starts with planner. or site.")
    return Axis(key, tuple(_value(v.strip()) for v in values.split(",")))


def settings(axes: Sequence[Axis]) -> list[Setting]:
    keys = [a.key for a in axes]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise GridError(f"--set {dupes[0]}: given twice; put every value in one --set")
    combos = itertools.product(*(a.values for a in axes))
    return [Setting(tuple(zip(keys, combo, strict=True))) for combo in combos]


def apply(
    setting: Setting, scenario: Scenario, planner: PlannerConfig
) -> tuple[Scenario, PlannerConfig]:
    """The scenario and planner settings of one cell, checked like their files.

    Raises:
        GridError: a key that does not exist or a value out of its bounds, named as in --set.
    """
    plan = msgspec.to_builtins(planner)
    site = msgspec.to_builtins(scenario)
    for key, value in setting.pairs:
        head, _, path = key.partition(".")
        if head == "planner":
            _set(plan, path.split("."), value, key)
        else:
            _set(site, _site_path(site, path), value, key)
    try:
        new_planner = convert(plan, PlannerConfig, "--set planner")
        new_scenario = convert(site, Scenario, "--set site")
    except FileError as exc:
        prefix = "planner" if exc.source.endswith("planner") else "site"
        raise GridError(f"--set {prefix}.{exc.key} = {_shown(exc.value)}: {exc.reason}") from None
    if not float(new_planner.step_min).is_integer():
        raise GridError("--set planner.step_min: a whole number of minutes (the plant steps 1 min)")
    return new_scenario, new_planner


def _site_path(site: dict[str, Any], path: str) -> list[str]:
    parts = path.split(".")
    if parts[0] not in site and len(parts) == 1:
        # site.bess_energy_mwh → site.bess.energy_mwh
        for table in sorted(site, key=len, reverse=True):
            if isinstance(site[table], list | dict) and parts[0].startswith(table + "_"):
                return [table, parts[0].removeprefix(table + "_")]
    return parts


def _set(node: Any, path: list[str], value: Any, key: str) -> None:
    name, rest = path[0], path[1:]
    if isinstance(node, list):
        if not node:
            raise GridError(f"--set {key}: the scenario has no such asset")
        for item in node:
            _set(item, path, value, key)
        return
    if not isinstance(node, dict) or (name not in node and rest):
        raise GridError(f"--set {key}: no table {name!r} here")
    if not rest:
        if name not in node:
            known = ", ".join(sorted(k for k, v in node.items() if not isinstance(v, list | dict)))
            raise GridError(f"--set {key}: no key {name!r} here (keys: {known})")
        node[name] = value
        return
    if node[name] is None:
        raise GridError(f"--set {key}: the scenario has no {name}")
    _set(node[name], rest, value, key)


def _value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
