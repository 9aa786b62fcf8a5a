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
        self.n_rows += n

    def soft_range(
        self,
        family: str,
        cols: IntArray,
        lo: float | FloatArray,
        hi: float | FloatArray,
        price: float,
    ) -> None:
        """lo − s⁻ ≤ z[cols] ≤ hi + s⁺ with slack blocks ``slack:<family>_low/_high`` priced
        per unit; an infinite side gets no rows."""
        n = len(cols)
        k = np.arange(n)
        for side, bound, sign in (("low", lo, 1.0), ("high", hi, -1.0)):
            b = np.broadcast_to(np.asarray(bound, dtype=float), (n,))
            if not np.isfinite(b).any():
                continue
            slack = self.var(f"slack:{family}_{side}", n, 0.0, np.inf, price)
            lb, ub = (b, np.inf) if sign > 0 else (-np.inf, b)
            self.rows(
                f"{family}_{side}",
                np.concatenate([k, k]),
                np.concatenate([cols, slack]),
                np.concatenate([np.ones(n), np.full(n, sign)]),
                lb,
                ub,
                n,
            )

    def matrix(self) -> tuple[sparse.csr_array, FloatArray, FloatArray]:
        if not self._rows:
            return sparse.csr_array((0, self.n_vars)), np.empty(0), np.empty(0)
        a = sparse.coo_array(
            (np.concatenate(self._vals), (np.concatenate(self._rows), np.concatenate(self._cols))),
            shape=(self.n_rows, self.n_vars),
        ).tocsr()
        return a, np.concatenate(self._lb), np.concatenate(self._ub)

    def split(self) -> tuple[sparse.csr_array, FloatArray, sparse.csr_array, FloatArray]:
        """The rows as linprog wants them: (A_ub, b_ub, A_eq, b_eq)."""
        a, lb, ub = self.matrix()
        a.eliminate_zeros()
        eq = lb == ub
        upper = np.isfinite(ub) & ~eq
        lower = np.isfinite(lb) & ~eq
        a_ub = sparse.vstack([a[upper], -a[lower]]).tocsr()
        return a_ub, np.concatenate([ub[upper], -lb[lower]]), a[eq], ub[eq]

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        return np.concatenate(self.lo), np.concatenate(self.hi)

    def cost_vector(self) -> FloatArray:
        return np.concatenate(self.cost) if self.cost else np.empty(0)
