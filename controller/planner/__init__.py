"""The planner: a receding-horizon LP over pot-line current, BESS and captive unit.

:mod:`~controller.planner.types` holds what it takes and returns (plant state, settings,
schedule), :mod:`~controller.planner.scheduler` solves (HiGHS through scipy),
:mod:`~controller.planner.model` builds the LP from :mod:`~controller.planner.lp`,
:mod:`~controller.planner.recursion` and :mod:`~controller.planner.lineheat`.
docs/scheduler.md describes the model.
"""
