"""The command line as a user runs it: exit codes, JSON output, error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smelter_ems.cli import main


def test_check_config_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).parent.parent / "deploy" / "smelter-ems.example.toml"
    assert main(["check-config", str(example)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "note" not in out  # it names its site file


def test_check_config_says_when_run_will_need_a_site(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[mqtt]\nkeepalive_s = 30\n")
    assert main(["check-config", str(cfg)]) == 0
    assert "no [controller] site: `run --config` needs --site FILE" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[mqtt]\nkeepalive_s = 2\n", "key 'mqtt.keepalive_s' = 2: Expected `int` >= 5"),
        ("[mqtt]\nurl = 'http://x'\n", "key 'mqtt.url' = 'http://x'"),
        ("[mqtt]\nkeep_alive_s = 30\n", "key 'mqtt.keep_alive_s' = 30: unknown key"),
        ("[simulator]\nspeed = -1\n", "key 'simulator.speed' = -1"),
        (
            "[simulator]\nscenario = 'atlantis'\n",
            "key 'simulator.scenario' = 'atlantis': no such built-in",
        ),
        ("[mqtt\n", "not valid TOML"),
        ("[influxx]\nurl = 'x'\n", "key 'influxx': unknown table"),
        ("[planner]\nfar_step_min = 7\n", "key 'planner.far_step_min' = 7: must divide a day"),
        ("[planner]\nstep_min = 30\nfar_step_min = 20\n", "must not be shorter than step_min"),
        (
            "[controller]\nlease_ttl_s = 0.5\n",
            "key 'controller.lease_ttl_s' = 0.5: Expected `float` >= 2.0",
        ),
        ("[controller]\ninstance_id = 'ems a'\n", "key 'controller.instance_id' = 'ems a'"),
    ],
)
def test_check_config_names_key_value_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    assert main(["check-config", str(f)]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert str(f) in err


def test_check_config_reports_a_bad_scenario_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "site.toml"
    scenario.write_text(
        'name = "s"\nlatitude_deg = 25\nlongitude_deg = 100\n[[potline]]\nname = "L1"\n'
        "pots = 0\n[grid]\n"
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[simulator]\nscenario = '{scenario}'\n")
    assert main(["check-config", str(cfg)]) == 2
    assert "key 'potline[0].pots' = 0: Expected `int` >= 1" in capsys.readouterr().err


def test_check_config_checks_the_site_file_it_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "site.toml").write_text(
        'name = "s"\nlatitude_deg = 25\nlongitude_deg = 100\nutc_offset_h = 8\nislanded = true\n'
        '[[lines]]\nname = "L1"\nramp_frac_per_h = 0\n',
        encoding="utf-8",
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text("[controller]\nsite = 'site.toml'\n")  # relative to the config file
    assert main(["check-config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{tmp_path / 'site.toml'}: key 'lines[0].ramp_frac_per_h' = 0: Expected `float` > 0" in err
    )


def test_check_config_names_the_key_of_a_site_file_that_is_not_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[controller]\nsite = 'nowhere.toml'\n")
    assert main(["check-config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: key 'controller.site' = '{tmp_path / 'nowhere.toml'}': file not found" in err


def test_the_controller_no_longer_takes_a_scenario_in_its_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[controller]\nscenario = 'yunnan-hydro-solar'\n")
    assert main(["check-config", str(cfg)]) == 2
    assert "key 'controller.scenario' = 'yunnan-hydro-solar': unknown key" in (
        capsys.readouterr().err
    )


def test_run_without_a_site_says_how_to_give_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[controller]\nhttp_port = 0\n")
    assert main(["run", "--config", str(cfg)]) == 2
    assert f"{cfg}: key 'controller.site' = '': no site file: give --site FILE" in (
        capsys.readouterr().err
    )
    missing = tmp_path / "none.toml"
    assert main(["run", "--site", str(missing), "--http-port", "0"]) == 2
    assert f"error: key '--site' = '{missing}': file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["run", "--site", "s.toml", "--scenario", "yunnan-hydro-solar"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_simulate_offline_json_has_the_kpis(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            "--offline",
            "--scenario",
            "xinjiang-islanded",
            "--days",
            "0.25",
            "--seed",
            "2",
            "--json",
            "--current-frac",
            "0.95",
        ]
    )
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    for key in (
        "renewable_available_mwh",
        "renewable_used_mwh",
        "renewable_share",
        "curtailed_mwh",
        "grid_import_mwh",
        "grid_export_mwh",
        "captive_mwh",
        "co2_t",
        "cost",
        "aluminium_t",
        "aluminium_target_t",
        "thermal_violation_min",
        "min_bath_temp_c",
        "max_bath_temp_c",
        "potlines",
        "pots",
        "frozen_pots",
    ):
        assert key in r
    assert (r["scenario"], r["seed"], r["potlines"], r["pots"]) == ("xinjiang-islanded", 2, 2, 600)
    for stats in r["lines"].values():
        assert set(stats) >= {"min_bath_temp_c", "max_bath_temp_c", "min_ledge_cm", "max_ledge_cm"}
    # 95 % current: production 5 % under target, less the CE effect of a cooler bath
    assert r["aluminium_t"] == pytest.approx(0.95 * r["aluminium_target_t"], rel=0.01)


def test_simulate_rejects_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--offline", "--days", "0", "--json"]) == 2
    assert "days" in capsys.readouterr().err
    assert main(["simulate", "--offline", "--scenario", "nowhere"]) == 2
    assert "no such built-in scenario" in capsys.readouterr().err


def test_scenarios_lists_the_built_ins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {
        "yunnan-hydro-solar",
        "inner-mongolia-wind",
        "xinjiang-islanded",
    }
    assert [r["islanded"] for r in rows if r["name"] == "xinjiang-islanded"] == [True]


def test_check_config_solve_times_the_configured_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--solve solves the example's problem once and says how long it took; with a time limit
    the solve cannot keep half of, it warns, names the remedies and exits 1."""
    deploy = Path(__file__).parent.parent / "deploy"
    example = deploy / "smelter-ems.example.toml"
    assert main(["check-config", "--solve", str(example)]) == 0
    out = capsys.readouterr().out
    assert "one cold solve of the configured problem took" in out and "warning" not in out

    tight = tmp_path / "tight.toml"
    (tmp_path / "site.example.toml").write_text((deploy / "site.example.toml").read_text())
    tight.write_text(example.read_text().replace("time_limit_s = 10.0", "time_limit_s = 0.001", 1))
    assert main(["check-config", "--solve", str(tight)]) == 1
    out = capsys.readouterr().out
    assert "warning: the planner's dry solve" in out and "far_step_min = 60" in out
