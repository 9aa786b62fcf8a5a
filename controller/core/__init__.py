"""The control core: what the daemon runs and the backtest measures (docs/operations.md).

:class:`~controller.core.core.ControllerCore` composes small units: routing, modes, restore,
the forecasters' lifecycle, plan cadence, status, watchdogs, dispatch and metering.
:mod:`controller.core.ports` says what it exchanges with the shells that run it.
"""
