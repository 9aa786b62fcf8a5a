"""The LP solver: HiGHS through highspy, one model per planner, warm-started every cycle.

A receding-horizon LP differs from the last one in its data only: bounds, right-hand sides,
costs and the tangent coefficients of the line models.  :class:`HighsModel` keeps one HiGHS
model, changes only what changed, and lets HiGHS start the simplex from the basis it kept
(``shift=True`` instead moves the last optimal basis by the time that has passed: step k of
the new plan takes the status of the old step that covers its start; measured slower, it is
kept for the bench and the tests, not used by the planners).  When the structure changes
(another number of steps, of local midnights in the horizon, of lines or assets) or a warm
start fails, it solves
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


IPM_MIN_NNZ = 20_000
"""From this many matrix nonzeros a cold solve uses the interior-point method (with
crossover, so the next cycle has a basis), and a structure on which the warm simplex gains
little (:data:`WARM_MAX_ITERATIONS_PER_ROW`) is solved by it every cycle.  Below it, the
simplex: at 1 line 48 h @ 15 min (8,800 nonzeros) the IPM took 5× the warm simplex's time."""
WARM_MAX_ITERATIONS_PER_ROW = 0.2
"""A warm simplex that needed more iterations than this many per row on a large LP gains
too little from its basis, and its time varies with how far the optimum moved: the IPM's
barely does.  Measured on the bench's sequences (CPU time, one process, median / max of a
sequence): 4 lines 48 h @ 5 min (68,000 nonzeros, 0.32 iterations per row warm) warm
simplex 1.7 / 4.5 s, IPM 2.0 / 2.1 s; 6 lines 48 h @ 15 min (32,000, 0.75) 1.04 / 2.2 s
against 0.58 / 0.66 s; 4 lines 48 h @ 15 min (23,000, 0.44) 0.28 / 0.75 s against 0.32 /
0.45 s; while 1 line 48 h @ 5 min (26,500, 0.08) took 0.06 / 0.23 s warm against 0.44 /
0.50 s."""


@dataclass
class _Last:
    """What the next cycle needs of this one: structure, matrix, time grid, and the basis
    (only kept for the shifted start; otherwise HiGHS keeps its own)."""

    key: tuple[object, ...]
    a: sparse.csc_array
    times_s: FloatArray
    basis: tuple[Int8Array, Int8Array] | None = None
    """(column, row) statuses by HighsBasisStatus value."""


class HighsModel:
    """One HiGHS model, re-used from solve to solve (one per planner).

    ``warm=False`` solves every LP cold (a fresh model each time): the reference the warm path
    is checked and measured against.  A warm solve changes the data of the model HiGHS keeps
    and runs the dual simplex from the basis HiGHS already holds (the last optimal one, index
    for index).  ``shift=True`` instead moves the last basis forward by the time that has
    passed (:func:`_shifted_basis`), which measured slower (bench/bench_scheduler.py,
    docs/scheduler.md: more simplex iterations than a cold solve).  Large LPs on which the
    warm start gains little are solved cold by the interior-point method
    (:data:`IPM_MIN_NNZ`, :data:`WARM_MAX_ITERATIONS_PER_ROW`).  Thread-safe: a solve that
    finds the model busy (a previous solve still running after its deadline) solves cold on a
    model of its own.
    """

    def __init__(self, *, warm: bool = True, shift: bool = False) -> None:
        self.warm = warm
        self.shift = shift
        self._highs = _new_highs()
        self._last: _Last | None = None
        self._ipm_key: tuple[object, ...] | None = None
        """The structure the warm simplex gained little on: solved by the IPM each cycle."""
        self._lock = threading.Lock()
        self.warm_solves = 0
        """Solves that started from the previous basis (and ended with a solution)."""
        self.cold_solves = 0

    def solve(
        self,
        lp: LinearProgram,
        times_s: FloatArray,
        time_limit_s: float,
        *,
        started_s: float | None = None,
    ) -> LpResult:
        """Solve ``lp`` (whose per-step blocks start at ``times_s``) within ``time_limit_s``
        counted from ``started_s`` (a ``time.perf_counter()`` reading: when the caller began
        building the LP; default now).  Raises ValueError on a NaN or infinite coefficient
        (nothing is solved then)."""
        t_start = time.perf_counter() if started_s is None else started_s
        if not self._lock.acquire(blocking=False):
            return HighsModel(warm=False).solve(lp, times_s, time_limit_s, started_s=t_start)
        try:
            return self._solve(lp, np.asarray(times_s, dtype=float), t_start + time_limit_s)
        finally:
            self._lock.release()

    def _solve(self, lp: LinearProgram, times_s: FloatArray, deadline_s: float) -> LpResult:
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
        if last is not None and last.key == key and self._ipm_key != key:
            self._update(lp, a, last.a, cost, col_lo, col_hi, row_lo, row_hi)
            if not self.shift or (
                last.basis is not None
                and self._set_basis(*_shifted_basis(lp, last.basis, last.times_s, times_s))
            ):
                result = self._run(deadline_s, warm=True)
                if (
                    a.nnz >= IPM_MIN_NNZ
                    and result.iterations > WARM_MAX_ITERATIONS_PER_ROW * lp.n_rows
                ):
                    self._ipm_key = key
        if result is None or result.status == LpStatus.FAILED:
            if result is not None and time.perf_counter() >= deadline_s:
                return result
            ipm = a.nnz >= IPM_MIN_NNZ or self._ipm_key == key
            self._highs = _new_highs()
            self._pass(lp, a, cost, col_lo, col_hi, row_lo, row_hi)
            if ipm:
                self._highs.setOptionValue("solver", "ipm")
            result = self._run(deadline_s, warm=False)
            if result.status == LpStatus.FAILED and time.perf_counter() < deadline_s:
                # presolve now and then hands back a model it cannot classify ("Unknown",
                # primal feasible); the same model solves without it
                self._highs.setOptionValue("presolve", "off")
                result = self._run(deadline_s, warm=False)
                self._highs.setOptionValue("presolve", "choose")
            if ipm:
                self._highs.setOptionValue("solver", "choose")
        if result.warm:
            self.warm_solves += 1
        else:
            self.cold_solves += 1
        if self.warm and result.status == LpStatus.OPTIMAL:
            self._last = _Last(key, a, times_s)
            if self.shift:
                basis = self._highs.getBasis()
                self._last.basis = (
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
        matrix, only the coefficients that changed (the tangents, a production row's days).
        HiGHS keeps its basis through these changes."""
        h = self._highs
        cols = np.arange(lp.n_vars, dtype=np.int32)
        rows = np.arange(lp.n_rows, dtype=np.int32)
        _check(h.changeColsCost(lp.n_vars, cols, cost), "changeColsCost")
        _check(h.changeColsBounds(lp.n_vars, cols, col_lo, col_hi), "changeColsBounds")
        # (in highspy's binding, missing from its type stubs)
        changed = h.changeRowsBounds(lp.n_rows, rows, row_lo, row_hi)  # type: ignore[attr-defined]
        _check(changed, "changeRowsBounds")
        for r, c, v in zip(*_changed_coefficients(a, a_last), strict=True):
            h.changeCoeff(r, c, v)

    def _set_basis(self, cols: Int8Array, rows: Int8Array) -> bool:
        basis = highspy.HighsBasis()
        basis.col_status = [_BY_VALUE[v] for v in cols.tolist()]
        basis.row_status = [_BY_VALUE[v] for v in rows.tolist()]
        # "alien": HiGHS checks it and repairs a singular or incomplete one with slacks
        basis.alien = True
        return bool(self._highs.setBasis(basis) == highspy.HighsStatus.kOk)

    def _run(self, deadline_s: float, *, warm: bool) -> LpResult:
        h = self._highs
        # HiGHS's time limit counts the model's run time since it was built (HiGHS issue
        # #1477): the time left until the deadline goes on top of it
        left_s = max(deadline_s - time.perf_counter(), 1e-3)
        h.setOptionValue("time_limit", h.getRunTime() + left_s)
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


def _changed_coefficients(
    a: sparse.csc_array, a_last: sparse.csc_array
) -> tuple[list[int], list[int], list[float]]:
    """(rows, columns, new values) of the coefficients of ``a`` that differ from ``a_last``
    (0 where an entry went away).  On the same sparsity pattern (most cycles) a comparison
    of the data arrays; otherwise the difference of the two matrices."""
    if np.array_equal(a.indptr, a_last.indptr) and np.array_equal(a.indices, a_last.indices):
        k = np.flatnonzero(a.data != a_last.data)
        col = np.searchsorted(a.indptr, k, side="right") - 1
        return a.indices[k].tolist(), col.tolist(), a.data[k].tolist()
    diff = sparse.coo_array(a - a_last)
    new = np.asarray(a[diff.row, diff.col], dtype=float).ravel()
    return diff.row.tolist(), diff.col.tolist(), new.tolist()


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
    lp: LinearProgram,
    basis: tuple[Int8Array, Int8Array],
    last_times_s: FloatArray,
    times_s: FloatArray,
) -> tuple[Int8Array, Int8Array]:
    """The last basis moved forward in time: every per-step block of columns and segment of
    rows (n long, or n − 1 for a recursion's rows from step 1) takes the status of the old
    step at the same time; other columns and rows keep theirs."""
    n = times_s.size
    col_status, row_status = basis
    cols, rows = col_status.copy(), row_status.copy()
    if last_times_s.size != n or n < 2:
        return cols, rows
    step = _step_map(last_times_s, times_s)
    for block in lp.blocks.values():
        if block.size == n:
            cols[block] = col_status[block[step]]
    for first, count in lp.segments:
        if count == n:
            rows[first : first + n] = row_status[first + step]
        elif count == n - 1:
            rows[first : first + count] = row_status[first + np.maximum(step[1:] - 1, 0)]
    return cols, rows
