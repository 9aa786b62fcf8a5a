"""The green-aluminium KPIs (docs/kpis.md): CO2 per tonne and the hour-by-hour renewable share,
on hand-checkable numbers and on a simulated day."""

from __future__ import annotations

import pytest

from simulator.kpi import KpiAccumulator, hourly_matched_share
from simulator.offline import OfflineRun, run_offline
from simulator.scenario import load_scenario

YUNNAN = load_scenario("yunnan-hydro-solar")


def test_hourly_matching_counts_each_hours_surplus_only_in_that_hour() -> None:
    """Hour 1: 100 MWh renewable for 80 consumed (20 surplus, exported); hour 2: 20 for 80.
    Hourly matching: (80 + 20) / 160 = 0.625; an annual (volumetric) match would say
    min(120, 160) / 160 = 0.75, counting hour 1's export against hour 2's import."""
    assert hourly_matched_share([(100.0, 80.0), (20.0, 80.0)]) == pytest.approx(0.625)
    assert hourly_matched_share([]) == 0.0
    acc = KpiAccumulator(YUNNAN)
    acc.hourly = {100: [100.0, 80.0], 101: [20.0, 80.0]}
    starts, shares = acc.share_by_hour()
    assert shares == [1.0, 0.25]
    assert starts[1] - starts[0] == 3600.0
    assert (starts[0] / 3600.0 + YUNNAN.utc_offset_h) == 100  # local clock hours


def test_co2_per_tonne_on_a_simulated_day_is_the_electricity_co2_over_the_aluminium() -> None:
    kpis = run_offline(YUNNAN, OfflineRun(seed=1, days=1.0))
    num = {k: v for k, v in kpis.items() if isinstance(v, float)}
    assert num["co2_t_per_t_al"] == pytest.approx(num["co2_t"] / num["aluminium_t"], rel=1e-4)
    # by hand: grid import x Yunnan's 0.107 tCO2/MWh, no captive unit on this site
    assert num["co2_t"] == pytest.approx(num["grid_import_mwh"] * 0.107, rel=1e-3)
    available, consumed = num["renewable_available_mwh"], num["site_consumption_mwh"]
    hourly = num["renewable_share_hourly"]
    assert num["renewable_share"] <= hourly + 1e-9 <= min(available, consumed) / consumed + 1e-9
