"""The dependency rules of DESIGN §2, checked on the import statements themselves.

Packages and what each may import of ours, with no exemption for any file:

- ``wire`` (the MQTT contract and the broker link): nothing else of ours;
- ``forecasting``: nothing else of ours;
- ``simulator``: only ``wire``;
- ``controller``: ``wire`` and ``forecasting`` (never the simulator, the harness or the CLI);
- ``harness`` (backtest, forecast-eval, demo) and ``smelter_ems`` (the command-line
  dispatcher): anything; they are the only packages that import both ``controller`` and
  ``simulator``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = ("wire", "forecasting", "simulator", "controller", "harness", "smelter_ems")
ALLOWED: dict[str, set[str]] = {
    "wire": set(),
    "forecasting": set(),
    "simulator": {"wire"},
    "controller": {"wire", "forecasting"},
    "harness": {"wire", "forecasting", "simulator", "controller"},
    "smelter_ems": {"wire", "forecasting", "simulator", "controller", "harness"},
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}: relative import; the rules are checked on absolute ones")
    return found


def ours(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names if n.split(".")[0] in PACKAGES}


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_it_may(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    for f in files:
        foreign = ours(imports(f)) - {package}
        assert foreign <= ALLOWED[package], (f, foreign - ALLOWED[package])


def test_only_the_harness_and_the_dispatcher_import_both_controller_and_simulator() -> None:
    both = set()
    for package in PACKAGES:
        for f in (ROOT / package).rglob("*.py"):
            found = ours(imports(f)) | {package}
            if {"controller", "simulator"} <= found:
                both.add(package)
    assert both <= {"harness", "smelter_ems"}
    assert "harness" in both  # the backtest drives the controller against the simulator


def test_every_top_level_package_is_covered() -> None:
    found = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert found == set(PACKAGES)
