"""A small sparse LP builder: named variable blocks and named constraint families.

The scheduler allocates variables block by block (``I-L1``, ``soc-bess1`` ...) and adds
constraints one family at a time (``balance``, ``L1-ramp`` ...).  Families are remembered so
that a report can say which family a row, a slack or a failure belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import sparse

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class LinearProgram:
    """min cᵀz  s.t.  lb ≤ A z ≤ ub,  lo ≤ z ≤ hi."""

    blocks: dict[str, IntArray] = field(default_factory=dict)
    lo: list[FloatArray] = field(default_factory=list)
    hi: list[FloatArray] = field(default_factory=list)
    cost: list[FloatArray] = field(default_factory=list)
    n_vars: int = 0
    families: dict[str, tuple[int, int]] = field(default_factory=dict)
    _rows: list[IntArray] = field(default_factory=list)
    _cols: list[IntArray] = field(default_factory=list)
    _vals: list[FloatArray] = field(default_factory=list)
    _lb: list[FloatArray] = field(default_factory=list)
    _ub: list[FloatArray] = field(default_factory=list)
    n_rows: int = 0
    segments: list[tuple[int, int]] = field(default_factory=list)
    """(first row, count) of each :meth:`rows` call: a warm start shifts the per-step ones."""

    def var(
        self,
        name: str,
        n: int,
        lo: float | FloatArray = 0.0,
        hi: float | FloatArray = np.inf,
        cost: float | FloatArray = 0.0,
    ) -> IntArray:
        """Allocate a block of ``n`` variables; returns their column indices."""
        if name in self.blocks:
            raise ValueError(f"variable block {name!r} already exists")
        cols = np.arange(self.n_vars, self.n_vars + n, dtype=np.int64)
        self.blocks[name] = cols
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (n,)).copy())
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (n,)).copy())
        self.cost.append(np.broadcast_to(np.asarray(cost, dtype=float), (n,)).copy())
        self.n_vars += n
        return cols

    def rows(
        self,
        family: str,
        row: IntArray,
        col: IntArray,
        val: FloatArray,
        lb: float | FloatArray,
        ub: float | FloatArray,
        n: int,
    ) -> None:
        """Add ``n`` rows ``lb ≤ Σ val·z[col] ≤ ub`` (``row`` local to this family)."""
        start = self.n_rows
        self._rows.append(np.asarray(row, dtype=np.int64) + start)
        self._cols.append(np.asarray(col, dtype=np.int64))
        self._vals.append(np.asarray(val, dtype=float))
        self._lb.append(np.broadcast_to(np.asarray(lb, dtype=float), (n,)).copy())
        self._ub.append(np.broadcast_to(np.asarray(ub, dtype=float), (n,)).copy())
        first, _ = self.families.get(family, (start, start))
        self.families[family] = (first, start + n)
        self.segments.append((start, n))
        self.n_rows += n

    def soft_range(
        self,
        family: str,
        cols: IntArray,
        lo: float | FloatArray,
        hi: float | FloatArray,
        price: float,
    ) -> None:
        """lo ≤ z[cols] + s⁻ − s⁺ ≤ hi, one ranged row per column, with slack blocks
        ``slack:<family>_low`` (s⁻) and ``_high`` (s⁺) priced per unit; an infinite side gets
        no slack."""
        self.soft_rows(family, np.arange(len(cols)), cols, np.ones(len(cols)), lo, hi, price)

    def soft_rows(
        self,
        family: str,
        row: IntArray,
        col: IntArray,
        val: FloatArray,
        lo: float | FloatArray,
        hi: float | FloatArray,
        price: float | FloatArray,
    ) -> None:
        """Rows ``lo ≤ Σ val·z[col] + s⁻ − s⁺ ≤ hi`` (``row`` local, 0 … n−1), soft on each
        finite side by the slack blocks ``slack:<family>_low`` (s⁻) and ``_high`` (s⁺), priced
        per unit.  One ranged row carries both sides: half the rows of two one-sided ones."""
        n = int(np.max(row)) + 1 if len(row) else 0
        k = np.arange(n)
        rows, cols, vals = [np.asarray(row)], [np.asarray(col)], [np.asarray(val, dtype=float)]
        for side, bound, sign in (("low", lo, 1.0), ("high", hi, -1.0)):
            if not np.isfinite(np.broadcast_to(np.asarray(bound, dtype=float), (n,))).any():
                continue
            slack = self.var(f"slack:{family}_{side}", n, 0.0, np.inf, price)
            rows.append(k)
            cols.append(slack)
            vals.append(np.full(n, sign))
        self.rows(
            family, np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), lo, hi, n
        )

    def matrix(self) -> tuple[sparse.csr_array, FloatArray, FloatArray]:
        if not self._rows:
            return sparse.csr_array((0, self.n_vars)), np.empty(0), np.empty(0)
        a = sparse.coo_array(
            (np.concatenate(self._vals), (np.concatenate(self._rows), np.concatenate(self._cols))),
            shape=(self.n_rows, self.n_vars),
        ).tocsr()
        a.eliminate_zeros()
        return a, np.concatenate(self._lb), np.concatenate(self._ub)

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        return np.concatenate(self.lo), np.concatenate(self.hi)

    def cost_vector(self) -> FloatArray:
        return np.concatenate(self.cost) if self.cost else np.empty(0)
