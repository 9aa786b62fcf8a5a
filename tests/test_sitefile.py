"""The site file: scenario → site file → site model round trips, errors that name the key, and
the documentation and example that describe the format."""

from __future__ import annotations

import dataclasses
import math
import pickle
import re
import tomllib
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.site import (
    BessModel,
    CaptiveModel,
    GridModel,
    LineModel,
    RenewableModel,
    SiteModel,
)
from controller.sitefile import load_site
from controller.thermal import PotThermal
from harness.site_from_scenario import site_from_scenario
from simulator.scenario import builtin_names, load_scenario
from smelter_ems.cli import main
from wire.tomlfile import FileError, dumps_toml

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("name", builtin_names())
def test_site_from_scenario_prints_a_file_that_loads_back_to_the_same_site(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["site", "--from-scenario", name]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# smelter-ems site file") and name in text.splitlines()[0]
    f = tmp_path / "site.toml"
    f.write_text(text, encoding="utf-8")
    expected = site_from_scenario(load_scenario(name))
    loaded = load_site(f)
    assert loaded == expected
    # not equal by accident: the file states the assets and limits of the scenario
    assert [ln.name for ln in loaded.lines] == [p.name for p in load_scenario(name).potline]
    assert loaded.islanded == load_scenario(name).islanded
    assert dict(loaded.renewable_capacity_mw) == {
        r.name: r.capacity_mw for r in load_scenario(name).renewable
    }


def test_site_from_an_unknown_scenario_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["site", "--from-scenario", "atlantis"]) == 2
    assert "key '--from-scenario' = 'atlantis': no such built-in scenario" in (
        capsys.readouterr().err
    )


def test_the_example_site_file_is_the_yunnan_scenarios_site() -> None:
    """The example config names it, so `run --config` on the example controls `simulate`."""
    example = load_site(ROOT / "deploy" / "site.example.toml")
    assert example == site_from_scenario(load_scenario("yunnan-hydro-solar"))


# --- errors name the key, the value and the reason ---------------------------------------------

GOOD = """\
name = "s1"
latitude_deg = 25.0
longitude_deg = 102.7
utc_offset_h = 8.0
{top}
[[lines]]
name = "L1"
{line}
[[bess]]
name = "b1"
{bess}
{grid}
[[renewable]]
name = "pv1"
kind = "pv"
capacity_mw = 500.0
"""
GRID = "[grid]\nimport_limit_mw = 1000.0\nexport_limit_mw = 0.0\ncarbon_t_per_mwh = 0.5\n"


def site_text(top: str = "", line: str = "", bess: str = "", grid: str = GRID) -> str:
    return GOOD.format(top=top, line=line, bess=bess, grid=grid)


def test_a_good_file_loads_with_defaults_for_what_it_leaves_out(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(site_text(line="pots = 240\ndeep_low_frac = 0.9\n"), encoding="utf-8")
    site = load_site(f)
    assert site.lines == (LineModel("L1", pots=240, deep_low_frac=0.9),)
    assert site.bess == (BessModel("b1"),)
    assert site.grid == GridModel(1000.0, 0.0, 0.5)
    assert site.renewable == (RenewableModel("pv1", "pv", 500.0),)
    assert not site.islanded and site.auxiliary_load_mw == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (site_text(line="pots = 0"), "key 'lines[0].pots' = 0: Expected `int` >= 1"),
        (
            site_text(line="deep_low_frac = 0.6"),
            "key 'lines[0].deep_low_frac' = 0.6: must lie between hard_min_frac (0.7) and "
            "band_low_frac (0.95)",
        ),
        (
            site_text(line="hard_max_frac = 1.05"),
            "key 'lines[0].high_max_frac' = '(not set)': must lie between band_high_frac (1.05) "
            "and hard_max_frac (1.05)",
        ),
        (site_text(line="e_tn_v = 4.5"), "key 'lines[0].e_tn_v' = 4.5: the pots make no heat"),
        (site_text(line="pot = 3"), "key 'lines[0].pot' = 3: unknown key"),
        (site_text(top="latitude = 25"), "key 'latitude' = 25: unknown key"),
        (site_text(top="utc_offset_h_ = 1"), "key 'utc_offset_h_' = 1: unknown key"),
        (site_text(top="name = 'a/b'").replace('name = "s1"\n', ""), "key 'name' = 'a/b'"),
        (
            site_text().replace("utc_offset_h = 8.0\n", ""),
            "key 'utc_offset_h' = '(missing)': a site file must state it",
        ),
        (
            site_text(bess="soc_min_frac = 0.95"),
            "key 'bess[0].soc_max_frac' = '(not set)': must be above soc_min_frac (0.95)",
        ),
        (
            site_text(grid=""),
            "key 'grid' = '(not set)': missing; a grid-connected site needs it "
            "(else islanded = true)",
        ),
        (
            site_text(top="islanded = true"),
            "key 'grid' = {'import_limit_mw': 1000.0, 'export_limit_mw': 0.0, "
            "'carbon_t_per_mwh': 0.5}: an islanded site has no grid connection",
        ),
        (
            site_text(grid=GRID + "peak_hours = [8, 9]\nvalley_hours = [0, 9]\n"),
            "key 'grid.valley_hours' = [0, 9]: overlaps peak_hours at [9]",
        ),
        (site_text(grid=GRID + "peak_hours = [24]\n"), "key 'grid.peak_hours[0]' = 24"),
        (
            site_text().replace('kind = "pv"', 'kind = "solar"'),
            "key 'renewable[0].kind' = 'solar'",
        ),
        (
            site_text().replace('name = "b1"', 'name = "L1"'),
            "key 'lines' = [{'name': 'L1'}]: asset names must be unique across the site; "
            "repeated: L1",
        ),
        (site_text(top="utc_offset_h = 20").replace("utc_offset_h = 8.0\n", ""), "<= 14.0"),
        ("name = [", "key '(syntax)' = None: not valid TOML"),
    ],
)
def test_a_bad_site_file_names_the_key_the_value_and_the_reason(
    tmp_path: Path, text: str, expected: str
) -> None:
    f = tmp_path / "site.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(FileError) as caught:
        load_site(f)
    assert str(caught.value).startswith(f"{f}: ")
    assert expected in str(caught.value)


def test_an_island_needs_no_grid_and_a_captive_unit_is_read(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    captive = '[[captive]]\nname = "c1"\nmin_mw = 270.0\nmax_mw = 600.0\nramp_mw_per_h = 540.0\n'
    f.write_text(site_text(top="islanded = true", grid=captive), encoding="utf-8")
    site = load_site(f)
    assert site.islanded and site.grid is None
    assert site.captive == (CaptiveModel("c1", 270.0, 600.0, 540.0),)


def test_site_models_are_hashable_picklable_and_checked_when_replaced() -> None:
    site = site_from_scenario(load_scenario("inner-mongolia-wind"))
    assert site.renewable_capacity_mw == {"wind1": 1100.0, "pv1": 500.0}
    assert pickle.loads(pickle.dumps(site)) == site
    assert len({site, msgspec.structs.replace(site)}) == 1  # a site and its lines are cache keys
    assert hash(site.lines[0]) == hash(LineModel("L1", **_line_fields(site.lines[0])))
    with pytest.raises(ValueError, match="deep_low_frac: must lie between"):
        msgspec.structs.replace(site.lines[0], hard_min_frac=0.9)
    with pytest.raises(ValueError, match="grid: an islanded site"):
        msgspec.structs.replace(site, islanded=True)


def _line_fields(line: LineModel) -> dict[str, object]:
    return {k: v for k, v in msgspec.structs.asdict(line).items() if k != "name"}


# --- the writer ------------------------------------------------------------------------------

scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.lists(st.integers(0, 23)),
)
keys = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True) | st.text(min_size=1, max_size=5)
tables = st.dictionaries(keys, scalars, max_size=5)


@given(
    top=tables,
    table=tables,
    array=st.lists(tables.filter(bool), min_size=1, max_size=3),
)
def test_dumps_toml_reads_back_exactly(
    top: dict[str, object], table: dict[str, object], array: list[dict[str, object]]
) -> None:
    data = {**top, "t": table, "rows": array}
    assert tomllib.loads(dumps_toml(data)) == data


def test_floats_are_written_exactly() -> None:
    data = {"a": 0.1 + 0.2, "b": 1e-300, "c": -math.inf, "d": 5e-324, "e": 1e16}
    assert tomllib.loads(dumps_toml(data)) == data


# --- the documentation --------------------------------------------------------------------------


SECTIONS = {
    SiteModel: "### Top level",
    LineModel: "### `[[lines]]`",
    PotThermal: "### `[lines.thermal]`",
    GridModel: "### `[grid]`",
    BessModel: "### `[[bess]]`",
    CaptiveModel: "### `[[captive]]`",
    RenewableModel: "### `[[renewable]]`",
}


def _documented_keys(heading: str) -> set[str]:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = doc.split("## Site file", 1)[1].split("\n## ", 1)[0]
    table = section.split(heading + "\n", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `([a-z_0-9]+)`", table, flags=re.MULTILINE))


@pytest.mark.parametrize(("type_", "heading"), SECTIONS.items())
def test_every_site_key_is_documented_in_its_table(type_: type, heading: str) -> None:
    if dataclasses.is_dataclass(type_):
        fields = {f.name for f in dataclasses.fields(type_)}
    else:
        fields = {f.name for f in msgspec.structs.fields(type_)}
    documented = _documented_keys(heading)
    assert fields == documented, (
        f"{heading}: only in the code {sorted(fields - documented)}, "
        f"only in the docs {sorted(documented - fields)}"
    )
