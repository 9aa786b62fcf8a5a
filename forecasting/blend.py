"""Online, lead-dependent combination of candidate forecasts, and its error quantiles.

Each kind offers a few candidate predictors of its normalised output y (persistence, the
weather forecast through the plant's curve, the weather forecast corrected by its current
error, ...).  How much each is worth depends on how old the latest observation is, so the
weights are fitted per node of a lead grid by weighted ridge regression, towards a prior
that trusts persistence early and the background late, and with exponential forgetting so
that a change of season or of the weather regime is followed.  The residuals of the same
predictions give empirical quantiles per lead node and predicted level: no distribution is
assumed and nothing is tuned to a site.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from forecasting.curve import isotonic_increasing
from forecasting.types import Array, IntArray

HOUR_S: Final = 3600.0
LEAD_GRID_S: Final = HOUR_S * np.array(
    [1 / 6, 1 / 3, 2 / 3, 1, 1.5, 2, 3, 4, 6, 9, 12, 18, 24, 30, 36, 42, 48, 60]
)
"""Nodes of the lead (time since the latest observation) [s]: dense early, where weights move."""
PRIOR_PERSISTENCE_S: Final = 3.0 * HOUR_S
"""Prior decay of trust in persistence [s]; data override it within a day."""
PRIOR_STRENGTH: Final = 20.0
"""Ridge strength towards the prior at short leads, in samples of unit weight."""
PRIOR_GROWTH_S: Final = HOUR_S
"""The prior's strength grows as 1 + lead / 1 h: errors at lead L stay correlated for about L,
so long-lead hindcasts carry fewer independent samples than their count says."""
MEMORY_S: Final = 4.0 * 86_400.0
"""Forgetting time of the fitted statistics [s]: a few days, so regimes and seasons are followed."""
LEVEL_EDGES: Final = np.array([0.15, 0.5, 0.85])
"""Predicted-level classes of y for the residuals: a plant near zero or near its ceiling errs
less (and one-sidedly) than one in the middle."""
QUANTILES: Final = np.array([0.1, 0.5, 0.9])
KEEP_RESIDUALS: Final = 1500
"""Residuals kept per (lead node, level class): five days of 5-minute targets."""
TARGET_S: Final = 300.0
"""Spacing of the hindcast targets [s] (the history's bins)."""
MIN_RESIDUALS: Final = 40
"""Below this a class borrows the residuals of its whole lead node."""
KEEP_SNAPSHOTS_S: Final = 64.0 * HOUR_S
"""Weight snapshots are kept this long: past the longest lead hindcast from a past issue."""


def tent(lead_s: Array) -> tuple[IntArray, Array]:
    """Lower node index and the weight of the upper node for linear interpolation over leads."""
    x = np.clip(lead_s, LEAD_GRID_S[0], LEAD_GRID_S[-1])
    hi = np.clip(np.searchsorted(LEAD_GRID_S, x, side="right"), 1, LEAD_GRID_S.size - 1)
    lo = (hi - 1).astype(np.int64)
    frac = (x - LEAD_GRID_S[lo]) / (LEAD_GRID_S[hi] - LEAD_GRID_S[lo])
    return lo, np.asarray(frac, dtype=np.float64)


def nearest_node(lead_s: Array) -> IntArray:
    lo, frac = tent(lead_s)
    return np.asarray(lo + (frac >= 0.5), dtype=np.int64)


def level_class(y: Array) -> IntArray:
    return np.asarray(np.searchsorted(LEVEL_EDGES, y), dtype=np.int64)


class LeadBlend:
    """Linear weights of ``m`` candidate predictors per lead node.

    ``persistence`` and ``background`` are the candidates' column indices for the prior
    w0(L) = ρ·e_persistence + (1 − ρ)·e_background, ρ = exp(−L / PRIOR_PERSISTENCE_S).
    """

    def __init__(self, m: int, persistence: int, background: int) -> None:
        g = LEAD_GRID_S.size
        self.m = m
        rho = np.exp(-LEAD_GRID_S / PRIOR_PERSISTENCE_S)
        self._prior = np.zeros((g, m))
        self._prior[:, persistence] += rho
        self._prior[:, background] += 1.0 - rho
        self._a = np.zeros((g, m, m))
        self._b = np.zeros((g, m))
        self._weights: Array | None = None
        self._clock_s = -math.inf
        self._prior_weights = self._solve(np.zeros_like(self._a), np.zeros_like(self._b))
        self._snapshot_s: list[float] = []
        self._snapshots: list[Array] = []

    def forget(self, now_s: float) -> None:
        """Age the statistics to ``now_s`` (time only moves forward)."""
        if math.isfinite(self._clock_s) and now_s > self._clock_s:
            decay = math.exp(-(now_s - self._clock_s) / MEMORY_S)
            self._a *= decay
            self._b *= decay
        self._clock_s = max(self._clock_s, now_s)

    def learn(self, lead_s: Array, x: Array, y: Array, weight: Array) -> None:
        """Add rows: candidates ``x`` (n, m) that predicted ``y`` (n,), with sample weights."""
        ok = np.isfinite(y) & np.all(np.isfinite(x), axis=1) & (weight > 0.0)
        if not ok.any():
            return
        lo, frac = tent(lead_s[ok])
        xs, ys, ws = x[ok], y[ok], weight[ok]
        outer = np.einsum("ni,nj->nij", xs, xs)
        pairs: tuple[tuple[IntArray, Array], ...] = ((lo, 1.0 - frac), (lo + 1, frac))
        for idx, share in pairs:
            w = ws * share
            np.add.at(self._a, idx, w[:, None, None] * outer)
            np.add.at(self._b, idx, (w * ys)[:, None] * xs)
        self._weights = None

    def weights(self) -> Array:
        """Fitted weights per node, shape (nodes, m)."""
        if self._weights is None:
            self._weights = self._solve(self._a, self._b)
        return self._weights

    def snapshot(self, t_s: float) -> None:
        """Remember the weights as of ``t_s``, for out-of-sample residuals later."""
        self._snapshot_s.append(t_s)
        self._snapshots.append(self.weights().copy())
        while self._snapshot_s and self._snapshot_s[0] < t_s - KEEP_SNAPSHOTS_S:
            del self._snapshot_s[0], self._snapshots[0]

    def predict(self, lead_s: Array, x: Array, as_of_s: Array | None = None) -> Array:
        """Blended prediction per row (weights interpolated between lead nodes).

        With ``as_of_s``, each row uses the weights of the latest snapshot at or before its
        issue time (the prior's before any): what a forecast issued then would have used.
        """
        lo, frac = tent(lead_s)
        if as_of_s is None:
            w = self.weights()
            wr = w[lo] * (1.0 - frac)[:, None] + w[lo + 1] * frac[:, None]
        else:
            table = np.stack([self._prior_weights, *self._snapshots])
            pick = np.searchsorted(np.array(self._snapshot_s), as_of_s, side="right")
            wr = table[pick, lo] * (1.0 - frac)[:, None] + table[pick, lo + 1] * frac[:, None]
        return np.asarray(np.einsum("nm,nm->n", wr, x), dtype=np.float64)

    def _solve(self, a: Array, b: Array) -> Array:
        """Ridge towards the prior with weights summing to one (a forecast combination:
        unbiased candidates give an unbiased blend, and a calm or a stormy spell in the
        training data cannot teach it to shrink every forecast towards that spell)."""
        g, m = self._prior.shape
        kappa = PRIOR_STRENGTH * (1.0 + LEAD_GRID_S / PRIOR_GROWTH_S)
        lhs = np.zeros((g, m + 1, m + 1))
        lhs[:, :m, :m] = a + kappa[:, None, None] * np.eye(m)
        lhs[:, :m, m] = 1.0
        lhs[:, m, :m] = 1.0
        rhs = np.concatenate([b + kappa[:, None] * self._prior, np.ones((g, 1))], axis=1)
        solved = np.linalg.solve(lhs, rhs[..., None])[..., 0]
        return np.asarray(solved[:, :m], dtype=np.float64)


class ResidualQuantiles:
    """Empirical P10/P50/P90 of residuals per lead node and predicted-level class.

    Until a class has seen much, its quantiles are shrunk towards a prior: the spread of y
    itself about its mean (what a forecast without skill would have).  The prior counts as one
    lead's worth of residuals, max(L, 1 h) of 5-minute targets: within one lead the residuals
    come from the same weather, so that is about one independent sample of it.  Spread never
    shrinks with lead: an error that a forecast cannot avoid at 6 h it cannot avoid at 12 h.
    """

    def __init__(self) -> None:
        shape = (LEAD_GRID_S.size, LEVEL_EDGES.size + 1)
        self._buf = np.full((*shape, KEEP_RESIDUALS), np.nan)
        self._count = np.zeros(shape, dtype=np.intp)
        self._next = np.zeros(shape, dtype=np.intp)
        self._table: Array | None = None
        self._prior = np.zeros(QUANTILES.size)

    def set_prior(self, offsets: Array) -> None:
        """Quantile offsets of y about its mean (P10, P50, P90), from the plant's history."""
        if not np.array_equal(offsets, self._prior):
            self._prior = np.asarray(offsets, dtype=np.float64).copy()
            self._table = None

    def add(self, lead_s: Array, predicted: Array, residual: Array) -> None:
        ok = np.isfinite(residual) & np.isfinite(predicted)
        classes = LEVEL_EDGES.size + 1
        group = nearest_node(lead_s[ok]) * classes + level_class(predicted[ok])
        values = residual[ok]
        for g in np.unique(group).tolist():
            n, c = divmod(g, classes)
            r = values[group == g][-KEEP_RESIDUALS:]
            slots = (self._next[n, c] + np.arange(r.size)) % KEEP_RESIDUALS
            self._buf[n, c, slots] = r
            self._next[n, c] = (self._next[n, c] + r.size) % KEEP_RESIDUALS
            self._count[n, c] = min(self._count[n, c] + r.size, KEEP_RESIDUALS)
        if ok.any():
            self._table = None

    def table(self) -> Array:
        """Residual quantiles, shape (nodes, classes, 3); zeros where nothing is known yet."""
        if self._table is None:
            self._table = self._compute()
        return self._table

    def offsets(self, lead_s: Array, predicted: Array) -> Array:
        """Residual quantiles for each row, shape (n, 3), interpolated between lead nodes."""
        t = self.table()
        lo, frac = tent(lead_s)
        c = level_class(predicted)
        return np.asarray(
            t[lo, c] * (1.0 - frac)[:, None] + t[lo + 1, c] * frac[:, None], dtype=np.float64
        )

    def _compute(self) -> Array:
        nodes, classes = self._count.shape
        prior_n = (np.maximum(LEAD_GRID_S, HOUR_S) / TARGET_S)[:, None]
        # one sort each for the classes and for the pooled nodes (NaN, the unfilled slots,
        # sort last)
        per_class = _sorted_quantiles(np.sort(self._buf, axis=2), self._count)
        pooled_n = self._count.sum(axis=1)
        pooled = _sorted_quantiles(np.sort(self._buf.reshape(nodes, -1), axis=1), pooled_n)
        base = (pooled_n[:, None] * pooled + prior_n * self._prior) / (pooled_n[:, None] + prior_n)
        known = np.flatnonzero(pooled_n > 0)
        if known.size == 0:
            return np.broadcast_to(self._prior, (nodes, classes, QUANTILES.size)).copy()
        # leads shorter than any seen borrow the shortest seen; longer ones, the prior
        base[: known[0]] = base[known[0]]
        base[known[-1] + 1 :] = self._prior
        for n in range(nodes):
            if pooled_n[n] == 0:
                base[n] = base[known[np.argmin(np.abs(known - n))]]
        counts = self._count[:, :, None].astype(np.float64)
        shrunk = (counts * per_class + prior_n[:, :, None] * base[:, None, :]) / (
            counts + prior_n[:, :, None]
        )
        out = np.where(counts >= MIN_RESIDUALS, shrunk, base[:, None, :])
        # widths below and above the median do not shrink with lead (isotonic fit, weighted
        # by how much each node has seen): what is unavoidable at 6 h is so at 12 h
        weight = self._count.astype(np.float64) + 1.0
        for c in range(classes):
            lower = isotonic_increasing(out[:, c, 1] - out[:, c, 0], weight[:, c])
            upper = isotonic_increasing(out[:, c, 2] - out[:, c, 1], weight[:, c])
            out[:, c, 0] = out[:, c, 1] - lower
            out[:, c, 2] = out[:, c, 1] + upper
        return np.asarray(out, dtype=np.float64)


def _sorted_quantiles(ordered: Array, counts: IntArray) -> Array:
    """QUANTILES of each row of ``ordered`` (sorted, first ``counts`` entries valid), with
    numpy's default linear interpolation; NaN for empty rows.  Shape (*counts.shape, 3)."""
    k = counts[..., None].astype(np.float64)
    pos = QUANTILES * np.maximum(k - 1.0, 0.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(k.astype(np.int64) - 1, 0))
    frac = pos - lo
    a = np.take_along_axis(ordered, lo, axis=-1)
    b = np.take_along_axis(ordered, hi, axis=-1)
    return np.asarray(np.where(k > 0, a + frac * (b - a), np.nan), dtype=np.float64)
