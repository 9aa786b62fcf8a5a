"""First-order linear state recursions, written once and used twice.

Every state the planner tracks follows the same form::

    x[k+1] = a[k] · x[k] + Σ_j c_j[k] · v_j[k] + d[k]

- BESS energy:      E[k+1] = E[k] + Δ·η·ch[k] − Δ/η·dis[k]
- heat budget:      H[k+1] = e^(−Δ/τ_rec)·H[k] + Δ·(ΔQ[k] − u[k])
- exchanger lag:    u[k+1] = e^(−Δ/τ_hx)·u[k] + (1 − e^(−Δ/τ_hx))·ΔQ[k]
- production today: P[k+1] = a[k]·P[k] + Δ·rate·I[k]   (a[k] = 0 where a new local day starts)

:class:`Recursion` builds the equality rows of such a recursion for the LP
(:meth:`Recursion.rows`) and rolls the same recursion forward on numbers
(:meth:`Recursion.trajectory`, :meth:`Recursion.step`), so the planner's constraints and the
trajectories it reports — and the state tracker's estimates — cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Term:
    """One input of a recursion: column indices of v_j[k] in the LP, and its coefficient c_j[k]."""

    cols: IntArray
    coef: FloatArray | float


@dataclass(frozen=True)
class Rows:
    """Equality rows A·z = rhs in COO form (row indices local to the block)."""

    row: IntArray
    col: IntArray
    val: FloatArray
    rhs: FloatArray


@dataclass(frozen=True)
class Expr:
    """Linear expressions e[r] = Σ val·z[col] + const[r] in COO form (``row`` is r)."""

    row: IntArray
    col: IntArray
    val: FloatArray
    const: FloatArray


@dataclass(frozen=True)
class Recursion:
    """x[k+1] = a[k]·x[k] + Σ c_j[k]·v_j[k] + d[k]  for k = 0 … n−1, with x[0] = x0 known."""

    name: str
    a: FloatArray | float

    def _a(self, n: int) -> FloatArray:
        return np.broadcast_to(np.asarray(self.a, dtype=float), (n,)).copy()

    def rows(
        self, x_cols: IntArray, terms: Sequence[Term], x0: float, d: FloatArray | float = 0.0
    ) -> Rows:
        """Rows for ``x[k+1] − a[k]·x[k] − Σ c_j[k]·v_j[k] = d[k] (+ a[0]·x0 for k = 0)``.

        ``x_cols[k]`` is the column of x[k+1] (the state at the end of step k).
        """
        n = len(x_cols)
        a = self._a(n)
        k = np.arange(n)
        rows = [k]
        cols = [np.asarray(x_cols)]
        vals = [np.ones(n)]
        if n > 1:
            rows.append(k[1:])
            cols.append(np.asarray(x_cols[:-1]))
            vals.append(-a[1:])
        for t in terms:
            rows.append(k)
            cols.append(np.asarray(t.cols))
            vals.append(-np.broadcast_to(np.asarray(t.coef, dtype=float), (n,)))
        rhs = np.broadcast_to(np.asarray(d, dtype=float), (n,)).copy()
        rhs[0] += a[0] * x0
        return Rows(
            np.concatenate(rows).astype(np.int64),
            np.concatenate(cols).astype(np.int64),
            np.concatenate(vals),
            rhs,
        )

    def closed_form(
        self,
        at: IntArray,
        terms: Sequence[Term],
        x0: float,
        d: FloatArray | float = 0.0,
        n: int | None = None,
    ) -> Expr:
        """x[m+1] for each m in ``at``, as a linear expression of the inputs (no state
        columns)::

            x[m+1] = (Π_{j≤m} a[j])·x0 + Σ_{k≤m} (Π_{k<j≤m} a[j])·(Σ_i c_i[k]·v_i[k] + d[k])

        Exact, and sparse where a restarts (a = 0): a few rows instead of one per step when
        only some states are constrained (the production at each day's end)."""
        if n is None:
            n = len(terms[0].cols) if terms else np.size(d)
        a = self._a(n)
        dd = np.broadcast_to(np.asarray(d, dtype=float), (n,))
        rows: list[IntArray] = []
        cols: list[IntArray] = []
        vals: list[FloatArray] = []
        const = np.empty(len(at))
        for r, m in enumerate(np.asarray(at, dtype=np.int64).tolist()):
            # w[k] = Π_{k<j≤m} a[j] for k = 0 … m
            w = np.concatenate([np.cumprod(a[m:0:-1])[::-1], [1.0]])
            const[r] = w[0] * a[0] * x0 + float(np.dot(w, dd[: m + 1]))
            live = np.flatnonzero(w)
            for t in terms:
                coef = np.broadcast_to(np.asarray(t.coef, dtype=float), (n,))
                rows.append(np.full(live.size, r, dtype=np.int64))
                cols.append(np.asarray(t.cols)[live])
                vals.append(w[live] * coef[live])
        if not rows:
            empty = np.empty(0, np.int64)
            return Expr(empty, empty, np.empty(0), const)
        return Expr(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), const)

    def trajectory(
        self,
        x0: float,
        inputs: Sequence[tuple[FloatArray, FloatArray | float]],
        d: FloatArray | float = 0.0,
        n: int | None = None,
    ) -> FloatArray:
        """Roll the recursion forward: x[1..n] from x0 and input values (v_j, c_j)."""
        if n is None:
            n = len(inputs[0][0]) if inputs else np.size(d)
        a = self._a(n)
        drive = np.broadcast_to(np.asarray(d, dtype=float), (n,)).copy()
        for values, coef in inputs:
            drive += np.broadcast_to(np.asarray(coef, dtype=float), (n,)) * values
        x = np.empty(n)
        prev = x0
        for k in range(n):
            prev = a[k] * prev + drive[k]
            x[k] = prev
        return x

    def step(self, x: float, drive: float) -> float:
        """One step on numbers: a·x + drive (a scalar recursion; build one per step length)."""
        return float(np.asarray(self.a).flat[0]) * x + drive


@overload
def decay(dt_h: float, tau_h: float) -> float: ...
@overload
def decay(dt_h: FloatArray, tau_h: float) -> FloatArray: ...
def decay(dt_h: float | FloatArray, tau_h: float) -> float | FloatArray:
    """e^(−Δ/τ): the coefficient of a first-order lag over one step (per step for an array)."""
    if isinstance(dt_h, np.ndarray):
        return np.exp(-dt_h / tau_h) if tau_h > 0 else np.zeros(dt_h.shape)
    return float(np.exp(-dt_h / tau_h)) if tau_h > 0 else 0.0
