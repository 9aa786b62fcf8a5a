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


def decay(dt_h: float, tau_h: float) -> float:
    """e^(−Δ/τ): the coefficient of a first-order lag over one step."""
    return float(np.exp(-dt_h / tau_h)) if tau_h > 0 else 0.0
