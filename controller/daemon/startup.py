"""The daemon's start-up check: one dry solve of the configured planning problem.

A daemon whose planning problem is too large for its solver's time limit would run on the
fallback plan (nominal current, BESS idle) for as long as it runs, and say why only once the
first real plan overruns.  At start-up the daemon therefore solves its configured problem once
(:func:`controller.planner.dryrun.dry_solve`, the same check as ``smelter-ems check-config
--solve``) on a thread of its own, so that neither telemetry nor the first plans and setpoints
wait for it.  When the solve takes more than half the time limit or falls back, the warning,
naming the remedies, goes to the log and stays in the controller's status (a lasting
condition, until the daemon is restarted with another configuration).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Final

from controller.daemon.troubles import Conditions
from controller.planner import dryrun
from controller.planner.types import PlannerConfig
from controller.site import SiteModel

log = logging.getLogger(__name__)

CONDITION: Final = "startup_check"
"""The name of the status condition the check sets."""

DrySolve = Callable[[SiteModel, PlannerConfig, float], dryrun.DryRun]


class StartupCheck:
    """Runs :func:`~controller.planner.dryrun.dry_solve` once, off the event loop, and reports
    what it finds to the log and to ``conditions`` (the control core)."""

    def __init__(
        self,
        site: SiteModel,
        config: PlannerConfig,
        conditions: Conditions,
        *,
        dry_solve: DrySolve = dryrun.dry_solve,
        utc: Callable[[], float] = time.time,
    ) -> None:
        self.site = site
        self.config = config
        self._conditions = conditions
        self._dry_solve = dry_solve
        self._utc = utc
        self.result: dryrun.DryRun | None = None
        """The dry solve's outcome once it is known."""
        # its own thread: the solver's thread is for the plans the plant gets
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="startup-check"
        )

    async def run(self) -> dryrun.DryRun | None:
        """Solve once and report; None if the check itself failed (logged, and said in the
        status: the planner would most likely fail the same way)."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._executor, self._dry_solve, self.site, self.config, self._utc()
            )
        except Exception as exc:  # a bug in the check must not stop the daemon
            log.exception("start-up check: the planner's dry solve failed")
            reason = f"start-up check: the planner's dry solve failed: {type(exc).__name__}"
            self._conditions.condition(CONDITION, f"{reason}: {exc}"[:500])
            return None
        finally:
            self._executor.shutdown(wait=False)
        self.result = result
        limit_s = self.config.time_limit_s
        if result.warning:
            log.warning("start-up check: %s", result.warning)
            self._conditions.condition(CONDITION, f"start-up check: {result.warning}")
        else:
            log.info(
                "start-up check: the planner's dry solve took %.0f ms of its %g s time limit",
                result.solve_ms,
                limit_s,
            )
        return result

    def close(self) -> None:
        """Stop waiting for a check still running (its solve ends within the time limit)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
