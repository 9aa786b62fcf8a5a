"""The LP solver: HiGHS through highspy, one model per planner, warm-started every cycle.

A receding-horizon LP differs from the last one in its data only: bounds, right-hand sides,
costs and the tangent coefficients of the line models.  :class:`HighsModel` keeps one HiGHS
model, changes only what changed, and starts the simplex from the last optimal basis shifted
by the time that has passed (step k of the new plan takes the status of the old step that
covers its start; the last step keeps its own).  When the structure changes (another number of
steps, of local midnights in the horizon, of lines or assets) or a warm start fails, it solves
cold from scratch, with presolve, like a fresh model.  A warm start changes where the simplex
starts, not what it finds: the optimum is the same to the solver's tolerance
(tests/test_planner_warm.py).

``highspy._Highs`` is the C++ solver itself; the public ``highspy.Highs`` adds Python
callbacks this module does not use, and prints HiGHS's banner to stdout when it is built,
which would corrupt ``--json`` output.
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass

import highspy
import numpy as np
import numpy.typing as npt
from highspy._core import _Highs
from scipy import sparse

from controller.planner.lp import FloatArray, LinearProgram

Int8Array = npt.NDArray[np.int8]
_STATUS = list(highspy.HighsBasisStatus.__members__.values())
"""HighsBasisStatus by its integer value (kLower, kBasic, kUpper, kZero, kNonbasic)."""
_BY_VALUE = {int(s): s for s in _STATUS}


class LpStatus(enum.Enum):
    OPTIMAL = "optimal"
    TIME_LIMIT = "time_limit_with_solution"
    """Out of time with a primal feasible point (the simplex had reached phase 2)."""
    FAILED = "failed"


@dataclass(frozen=True)
class LpResult:
    status: LpStatus
    x: FloatArray | None
    objective: float
    message: str
    warm: bool
    """Whether the simplex started from the previous basis (False: a cold solve)."""
    iterations: int


@dataclass
class _Last:
    """What the next cycle needs of this one: structure, data, basis and time grid."""

    key: tuple[object, ...]
    a: sparse.csc_array
    times_s: FloatArray
    col_status: Int8Array
    row_status: Int8Array


class HighsModel:
    """One HiGHS model, re-used from solve to solve (one per planner).

    ``warm=False`` solves every LP cold (a fresh model each time): the reference the warm path
    is checked and measured against.  ``shift=True`` moves the last basis forward by the time
    that has passed (:func:`_shifted_basis`); by default it is taken as it is, index for
    index, which measured faster (bench/bench_scheduler.py, docs/scheduler.md: the shifted
    basis took more simplex iterations than a cold solve).  Thread-safe: a solve that finds
    the model busy (a previous solve still running after its deadline) solves cold on a model
    of its own.
    """

    def __init__(self, *, warm: bool = True, shift: bool = False) -> None:
        self.warm = warm
        self.shift = shift
        self._highs = _new_highs()
        self._last: _Last | None = None
        self._lock = threading.Lock()
        self.warm_solves = 0
        """Solves that started from the previous basis (and ended with a solution)."""
        self.cold_solves = 0

    def solve(self, lp: LinearProgram, times_s: FloatArray, time_limit_s: float) -> LpResult:
        """Solve ``lp`` (whose per-step blocks start at ``times_s``) within ``time_limit_s``.
        Raises ValueError on a NaN or infinite coefficient (nothing is solved then)."""
        if not self._lock.acquire(blocking=False):
            return HighsModel(warm=False).solve(lp, times_s, time_limit_s)
        try:
            return self._solve(lp, np.asarray(times_s, dtype=float), time_limit_s)
        finally:
            self._lock.release()

    def _solve(self, lp: LinearProgram, times_s: FloatArray, time_limit_s: float) -> LpResult:
        t_start = time.perf_counter()
        a, row_lo, row_hi = lp.matrix()
        a = sparse.csc_array(a)
        col_lo, col_hi = lp.bounds()
        cost = lp.cost_vector()
        if any(np.isnan(v).any() for v in (a.data, cost, row_lo, row_hi, col_lo, col_hi)) or not (
            np.isfinite(a.data).all() and np.isfinite(cost).all()
        ):
            raise ValueError("non-finite coefficient (NaN in the state or forecast)")
        key = _structure(lp)
        last = self._last if self.warm else None
        self._last = None
        result = None
        if last is not None and last.key == key:
            self._update(lp, a, last.a, cost, col_lo, col_hi, row_lo, row_hi)
            cols, rows = (
                _shifted_basis(lp, last, times_s)
                if self.shift
                else (last.col_status, last.row_status)
            )
            if self._set_basis(cols, rows):
                result = self._run(time_limit_s, warm=True)
        if result is None or result.status == LpStatus.FAILED:
            left_s = time_limit_s - (time.perf_counter() - t_start)
            if left_s <= 0.0 and result is not None:
                return result
            self._highs = _new_highs()
            self._pass(lp, a, cost, col_lo, col_hi, row_lo, row_hi)
            result = self._run(max(left_s, 1e-3), warm=False)
            left_s = time_limit_s - (time.perf_counter() - t_start)
            if result.status == LpStatus.FAILED and left_s > 0.0:
                # presolve now and then hands back a model it cannot classify ("Unknown",
                # primal feasible); the same model solves without it
                self._highs.setOptionValue("presolve", "off")
                result = self._run(left_s, warm=False)
                self._highs.setOptionValue("presolve", "choose")
        if result.warm:
            self.warm_solves += 1
        else:
            self.cold_solves += 1
        if self.warm and result.status == LpStatus.OPTIMAL:
            basis = self._highs.getBasis()
            self._last = _Last(
                key,
                a,
                times_s,
                np.fromiter(map(int, basis.col_status), np.int8, lp.n_vars),
                np.fromiter(map(int, basis.row_status), np.int8, lp.n_rows),
            )
        return result

    def _pass(
        self,
        lp: LinearProgram,
        a: sparse.csc_array,
        cost: FloatArray,
        col_lo: FloatArray,
        col_hi: FloatArray,
        row_lo: FloatArray,
        row_hi: FloatArray,
    ) -> None:
        model = highspy.HighsLp()
        model.num_col_, model.num_row_ = lp.n_vars, lp.n_rows
        model.col_cost_, model.col_lower_, model.col_upper_ = cost, col_lo, col_hi
        model.row_lower_, model.row_upper_ = row_lo, row_hi
        model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        model.a_matrix_.num_col_, model.a_matrix_.num_row_ = lp.n_vars, lp.n_rows
        model.a_matrix_.start_ = a.indptr
        model.a_matrix_.index_ = a.indices
        model.a_matrix_.value_ = a.data
        _check(self._highs.passModel(model), "passModel")

    def _update(
        self,
        lp: LinearProgram,
        a: sparse.csc_array,
        a_last: sparse.csc_array,
        cost: FloatArray,
        col_lo: FloatArray,
        col_hi: FloatArray,
        row_lo: FloatArray,
        row_hi: FloatArray,
    ) -> None:
        """Costs, bounds and right-hand sides are replaced whole (one call each); of the
        matrix, only the coefficients that changed (the tangents, a production row's days)."""
        h = self._highs
        cols = np.arange(lp.n_vars, dtype=np.int32)
        rows = np.arange(lp.n_rows, dtype=np.int32)
        _check(h.changeColsCost(lp.n_vars, cols, cost), "changeColsCost")
        _check(h.changeColsBounds(lp.n_vars, cols, col_lo, col_hi), "changeColsBounds")
        # (in highspy's binding, missing from its type stubs)
        changed = h.changeRowsBounds(lp.n_rows, rows, row_lo, row_hi)  # type: ignore[attr-defined]
        _check(changed, "changeRowsBounds")
        diff = sparse.coo_array(a - a_last)
        if diff.nnz:
            new = np.asarray(a[diff.row, diff.col], dtype=float).ravel()
            for r, c, v in zip(diff.row.tolist(), diff.col.tolist(), new.tolist(), strict=True):
                h.changeCoeff(r, c, v)

    def _set_basis(self, cols: Int8Array, rows: Int8Array) -> bool:
        basis = highspy.HighsBasis()
        basis.col_status = [_BY_VALUE[v] for v in cols.tolist()]
        basis.row_status = [_BY_VALUE[v] for v in rows.tolist()]
        # "alien": HiGHS checks it and repairs a singular or incomplete one with slacks
        basis.alien = True
        return bool(self._highs.setBasis(basis) == highspy.HighsStatus.kOk)

    def _run(self, time_limit_s: float, *, warm: bool) -> LpResult:
        h = self._highs
        # HiGHS's time limit counts the model's run time since it was built
        h.setOptionValue("time_limit", h.getRunTime() + max(time_limit_s, 1e-3))
        h.run()
        model_status = h.getModelStatus()
        info = h.getInfo()
        iterations = int(info.simplex_iteration_count)
        message = h.modelStatusToString(model_status)
        if model_status == highspy.HighsModelStatus.kOptimal:
            status = LpStatus.OPTIMAL
        elif (
            model_status
            in (highspy.HighsModelStatus.kTimeLimit, highspy.HighsModelStatus.kIterationLimit)
            and info.primal_solution_status == highspy.kSolutionStatusFeasible
        ):
            status = LpStatus.TIME_LIMIT
        else:
            return LpResult(LpStatus.FAILED, None, float("nan"), message, warm, iterations)
        x = np.asarray(h.getSolution().col_value, dtype=float)
        return LpResult(status, x, float(info.objective_function_value), message, warm, iterations)


def _new_highs() -> _Highs:
    h = _Highs()
    h.setOptionValue("output_flag", False)
    return h


def _check(status: highspy.HighsStatus, what: str) -> None:
    if status == highspy.HighsStatus.kError:
        raise ValueError(f"HiGHS {what} failed")


def _structure(lp: LinearProgram) -> tuple[object, ...]:
    """What must not change for a warm start: the variable blocks and row segments."""
    blocks = tuple((name, int(cols.size)) for name, cols in lp.blocks.items())
    return (lp.n_vars, lp.n_rows, blocks, tuple(lp.segments))


def _step_map(last_times_s: FloatArray, times_s: FloatArray) -> npt.NDArray[np.int64]:
    """For each new step, the old step that covers its start (the last one past its end)."""
    j = np.searchsorted(last_times_s, times_s, side="right") - 1
    return np.clip(j, 0, last_times_s.size - 1).astype(np.int64)


def _shifted_basis(
    lp: LinearProgram, last: _Last, times_s: FloatArray
) -> tuple[Int8Array, Int8Array]:
    """The last basis moved forward in time: every per-step block of columns and segment of
    rows (n long, or n − 1 for a recursion's rows from step 1) takes the status of the old
    step at the same time; other columns and rows keep theirs."""
    n = times_s.size
    cols, rows = last.col_status.copy(), last.row_status.copy()
    if last.times_s.size != n or n < 2:
        return cols, rows
    step = _step_map(last.times_s, times_s)
    for block in lp.blocks.values():
        if block.size == n:
            cols[block] = last.col_status[block[step]]
    for first, count in lp.segments:
        if count == n:
            rows[first : first + n] = last.row_status[first + step]
        elif count == n - 1:
            rows[first : first + count] = last.row_status[first + np.maximum(step[1:] - 1, 0)]
    return cols, rows
