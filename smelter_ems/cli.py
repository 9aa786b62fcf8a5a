"""The ``smelter-ems`` command line: one console script, one subcommand per job (DESIGN §6).

This dispatcher is part of the evaluation harness: subcommands that drive the simulator import
it lazily, so the controller package itself never depends on the simulator, and ``run --site``
and ``check-config`` work where the simulator package is not installed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _simulate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("simulate", help="run the plant simulator over MQTT, or --offline headless")
    p.add_argument(
        "--scenario",
        help="built-in scenario name or scenario file "
        "(default: the config's, else yunnan-hydro-solar)",
    )
    p.add_argument("--seed", type=int, help="random seed (default 1)")
    p.add_argument("--config", help="TOML config file ([mqtt] and [simulator] tables)")
    _mqtt_flags(p)
    p.add_argument("--speed", type=float, help="plant seconds per wall second (default 1)")
    p.add_argument("--offline", action="store_true", help="headless run, no broker, print KPIs")
    p.add_argument("--days", type=float, default=7.0, help="offline: days to simulate")
    p.add_argument("--json", action="store_true", help="offline: print one JSON object")
    p.add_argument("--current-frac", type=float, help="offline: hold every line at F x nominal")
    p.add_argument("--outage-start-h", type=float, help="offline: start of a full outage [h]")
    p.add_argument("--outage-hours", type=float, default=0.0, help="offline: outage length [h]")
    p.add_argument("--step-s", type=float, help="physics step in plant seconds (default 60)")
    p.add_argument(
        "--influx-url", help="log every publication to this InfluxDB 2 (token from INFLUX_TOKEN)"
    )
    p.add_argument("--influx-org", help="InfluxDB org (overrides the config's [influx] org)")
    p.add_argument("--influx-bucket", help="InfluxDB bucket (overrides [influx] bucket)")
    p.add_argument(
        "--log-dir",
        help="log every publication as line-protocol files here (with --influx-url: the spool)",
    )


def _mqtt_flags(p: argparse.ArgumentParser) -> None:
    """The broker connection, over the config's ``[mqtt]`` (docs/deployment.md)."""
    g = p.add_argument_group("broker (override the config's [mqtt] table)")
    g.add_argument("--broker", help="broker URL, mqtt://HOST:PORT or mqtts://HOST:PORT")
    g.add_argument("--mqtt-username", metavar="USER", help="the broker user (mqtt.username)")
    g.add_argument(
        "--mqtt-password-file",
        metavar="FILE",
        help="file holding the broker password (mqtt.password_file; replaces password_env)",
    )
    g.add_argument(
        "--mqtt-ca-file", metavar="FILE", help="CA to check the broker with (mqtts:// only)"
    )
    g.add_argument("--mqtt-cert-file", metavar="FILE", help="client certificate (mqtts:// only)")
    g.add_argument("--mqtt-key-file", metavar="FILE", help="client certificate's key")


def _run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="the control daemon: MQTT telemetry in, safe setpoints out")
    p.add_argument("--config", help="TOML config file ([mqtt], [controller], [planner], ...)")
    _mqtt_flags(p)
    site = p.add_mutually_exclusive_group()
    site.add_argument("--site", help="the site file (default: the config's [controller] site)")
    site.add_argument(
        "--scenario",
        help="instead of a site file, the site of a simulator scenario (built-in name or file), "
        "for the demo and tests; needs the simulator package",
    )
    p.add_argument("--state-file", help="state kept across restarts (controller.state_file)")
    p.add_argument(
        "--http-port", type=int, help="/healthz and /metrics port on loopback; 0 turns it off"
    )
    p.add_argument(
        "--influx-url", help="log to this InfluxDB 2 (token from INFLUX_TOKEN); default: files"
    )
    p.add_argument("--influx-org", help="InfluxDB org (overrides the config's [influx] org)")
    p.add_argument("--influx-bucket", help="InfluxDB bucket (overrides [influx] bucket)")


def _backtest_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "backtest", help="in-process closed loop with the simulator, strategies side by side"
    )
    p.add_argument(
        "--scenario", default="all", help="built-in scenario name, scenario file, or 'all'"
    )
    p.add_argument("--days", type=float, default=7.0, help="simulated days (default 7)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument(
        "--strategy",
        default="flat,rule,mpc,oracle",
        help="comma-separated strategies among flat, rule, mpc, oracle (default: all four)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (a list for all)")
    p.add_argument("--out", metavar="DIR", help="write per-step CSV traces and PNG plots here")
    p.add_argument("--horizon-h", type=float, help="planner horizon [h] (default 24)")
    p.add_argument(
        "--step-min", type=float, help="planner step and re-planning cycle [min] (default 15)"
    )
    p.add_argument(
        "--far-step-min",
        type=float,
        help="planner step beyond the first 6 h [min] (default: --step-min throughout)",
    )
    p.add_argument(
        "--progress", action="store_true", help="progress bar on stderr even when not a tty"
    )


def _sweep_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sweep", help="a grid of backtests (scenarios x seeds x settings) on Dask")
    p.add_argument(
        "--scenario",
        default="all",
        help="built-in scenario names or scenario files, comma-separated, or 'all'",
    )
    p.add_argument("--seeds", default="1", help="seeds: 1-20, or 1,3,5-7 (default 1)")
    p.add_argument("--days", type=float, default=2.0, help="simulated days per cell (default 2)")
    p.add_argument(
        "--strategy",
        default="flat,rule,mpc,oracle",
        help="comma-separated strategies (default all four; capture needs flat and oracle)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="sweep a planner. or site. key over these values (repeatable: every combination)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local cluster size (default: one per CPU)")
    where.add_argument("--scheduler", help="an existing Dask cluster, tcp://HOST:PORT")
    p.add_argument("--out", metavar="DIR", help="write cells.parquet, cells.csv, summary, plot")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--progress", action="store_true", help="progress bar even when not a tty")


def _demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="broker, simulator and the daemon on an accelerated clock; writes a report",
    )
    p.add_argument("--scenario", default="yunnan-hydro-solar", help="scenario name or file")
    p.add_argument("--days", type=float, default=1.0, help="simulated days (default 1)")
    p.add_argument("--speed", type=float, default=1500.0, help="plant s per wall s (1500)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--out", default="demo-out", help="output folder (default ./demo-out)")
    p.add_argument("--broker", help="use this broker, mqtt://HOST:PORT, instead of starting one")
    p.add_argument(
        "--embedded-broker", action="store_true", help="start amqtt even if Mosquitto is installed"
    )
    p.add_argument("--influx-url", help="the daemon logs here (token from INFLUX_TOKEN)")
    p.add_argument("--influx-org", help="InfluxDB org")
    p.add_argument("--influx-bucket", help="InfluxDB bucket")
    p.add_argument("--progress", action="store_true", help="progress bar even when not a tty")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smelter-ems",
        description="Energy management for aluminium smelters: pot-line flexibility and storage "
        "put to work on renewable supply.",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _demo_parser(sub)
    _run_parser(sub)
    _simulate_parser(sub)
    _backtest_parser(sub)
    _sweep_parser(sub)
    _forecast_eval_parser(sub)
    sc = sub.add_parser("scenarios", help="list the built-in scenarios")
    sc.add_argument("--json", action="store_true")
    st = sub.add_parser("site", help="print a site file to start from (for run --site)")
    st.add_argument(
        "--from-scenario",
        required=True,
        metavar="NAME",
        help="the site of this simulator scenario (built-in name or scenario file)",
    )
    cc = sub.add_parser(
        "check-config", help="validate a config file and its site file, explain what is wrong"
    )
    cc.add_argument("file")
    cc.add_argument(
        "--solve",
        action="store_true",
        help="also solve the configured planning problem once and warn (exit 1) when it takes "
        "over half the planner's time limit",
    )
    return parser


def _forecast_eval_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "forecast-eval", help="forecast skill tables on simulated plants or a measured CSV"
    )
    p.add_argument("--scenario", default="all", help="built-in scenario name or 'all'")
    p.add_argument("--days", type=float, default=7.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--data", help="measured series: CSV with timestamp, power_mw[, ghi_wm2|wind_speed_ms]"
    )
    p.add_argument("--kind", choices=["pv", "wind", "hydro"], help="with --data")
    p.add_argument("--capacity-mw", type=float, help="with --data")
    p.add_argument("--lat", type=float, help="with --data (pv)")
    p.add_argument("--lon", type=float, help="with --data (pv)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # journald stamps each line itself (JOURNAL_STREAM is set when stderr goes to it)
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format=f"{stamp}%(levelname)s %(name)s: %(message)s",
    )
    try:
        return _dispatch(args)
    except ModuleNotFoundError as exc:
        if not _is_simulator(exc):
            raise
        what = "run --scenario" if getattr(args, "scenario", None) else args.command
        print(
            f"smelter-ems: error: {what} needs the simulator package, which is not installed",
            file=sys.stderr,
        )
        return EXIT_USAGE


def _is_simulator(exc: ModuleNotFoundError) -> bool:
    return (exc.name or "").split(".")[0] == "simulator"


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run" and args.scenario is None:
        from controller.daemon import cli as daemon_cli  # noqa: PLC0415  (no simulator needed)

        return daemon_cli.run_command(args)
    if args.command == "check-config":
        return _check_config(args.file, args.solve)
    if args.command == "demo":
        from harness.demo.command import demo_command  # noqa: PLC0415  (harness only)

        return demo_command(args)
    if args.command == "backtest":
        from harness import report  # noqa: PLC0415  (harness only: see the docstring)

        return report.backtest_command(args)
    if args.command == "sweep":
        from harness.sweep import command as sweep  # noqa: PLC0415  (harness only)

        return sweep.sweep_command(args)
    if args.command == "forecast-eval":
        from harness import forecast_eval  # noqa: PLC0415  (harness only)

        return forecast_eval.main_forecast_eval(args)
    if args.command == "run":
        from harness import daemon_cli as scenario_run  # noqa: PLC0415  (harness only)

        return scenario_run.run_on_scenario(args)
    if args.command == "site":
        from harness.site_from_scenario import site_command  # noqa: PLC0415  (harness only)

        return site_command(args)
    from simulator import cli as sim_cli  # noqa: PLC0415  (harness only: see the docstring)

    if args.command == "simulate":
        from harness import simlog  # noqa: PLC0415  (harness only)

        return simlog.simulate_command(args)
    if args.command == "scenarios":
        return sim_cli.scenarios(args)
    return EXIT_USAGE


def _check_config(path: str, solve: bool = False) -> int:
    """The whole file: TOML, table names and the simulator's tables (when the simulator is
    installed), then the daemon's tables and the site file they name."""
    from controller.daemon import cli as daemon_cli  # noqa: PLC0415  (no simulator needed)

    try:
        from simulator import cli as sim_cli  # noqa: PLC0415  (harness only)
    except ModuleNotFoundError as exc:
        if not _is_simulator(exc):
            raise
        unchecked = " (the [simulator] table is not checked: no simulator package installed)"
    else:
        unchecked = ""
        code = sim_cli.check_config(path, announce=False)
        if code != EXIT_OK:
            return code
    code = daemon_cli.check_config(path, dry_solve=solve)
    if code == EXIT_OK:
        print(f"{path}: OK{unchecked}")
        if not daemon_cli.names_a_site(path):
            print(f"{path}: note: no [controller] site: `run --config` needs --site FILE")
    return code


if __name__ == "__main__":
    sys.exit(main())
