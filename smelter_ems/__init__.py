"""The ``smelter-ems`` console script: one dispatcher over the controller, the simulator and
the evaluation harness (DESIGN §6).  See :mod:`smelter_ems.cli`."""
