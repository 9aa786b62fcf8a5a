"""The dependency rules of DESIGN §2, checked on the import statements themselves."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] in {"controller", "forecasting", "simulator"}}


def test_forecasting_imports_nothing_of_ours() -> None:
    for f in (ROOT / "forecasting").rglob("*.py"):
        assert {n for n in ours(imports(f)) if not n.startswith("forecasting")} == set(), f


def test_simulator_imports_only_the_wire_contract() -> None:
    for f in (ROOT / "simulator").rglob("*.py"):
        foreign = {n for n in ours(imports(f)) if not n.startswith("simulator")}
        # the wire contract: payloads and topics, and how to reach the broker
        assert foreign <= {"controller.contract", "controller.mqttlink"}, f


def test_only_the_harness_and_the_cli_import_the_simulator() -> None:
    for f in (ROOT / "controller").rglob("*.py"):
        if "harness" in f.parts or f.name == "cli.py":
            continue
        assert not {n for n in ours(imports(f)) if n.startswith("simulator")}, f
