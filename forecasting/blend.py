"""Online, lead-dependent combination of candidate forecasts, and its error band.

Each kind offers a few candidate predictors of its normalised output y (persistence, the
weather forecast through the plant's curve, the weather forecast corrected by its current
error, ...).  How much each is worth depends on how old the latest observation is, so the
weights are fitted per node of a lead grid by weighted ridge regression, towards a prior
that trusts persistence early and the background late, and with exponential forgetting so
that a change of season or of the weather regime is followed.  The out-of-sample residuals
of the same predictions give a conformal error band per lead node and predicted level whose
coverage is steered online to the nominal 80 %: no distribution is assumed and nothing is
tuned to a site.
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
LEVEL_EDGES: Final = np.array([0.15, 0.5, 0.85, 0.98])
"""Predicted-level classes of y for the residuals: a plant near zero or near its ceiling errs
less (and one-sidedly) than one in the middle, and one forecast at its ceiling (a river above
its rated flow, a wind above rated speed, a clear sky) errs only downwards, and rarely."""
LOW_SCALE: Final = 0.3
"""Below this scale s (PV: clear-sky output under 30 % of capacity, a low sun) the residuals
form a class of their own, whatever the level: there the clear-sky index rests on the
plane-of-array geometry, the diffuse share and the averaging of each sample, and errs
relatively more than at midday.  A kind whose scale is always one never uses it."""
COVERAGE: Final = 0.8
"""Nominal share of outcomes inside the P10–P90 band."""
KEEP_RESIDUALS: Final = 1500
"""Residuals kept per (lead node, class): five days of 5-minute targets."""
TARGET_S: Final = 300.0
"""Spacing of the hindcast targets [s] (the history's bins)."""
MIN_RESIDUALS: Final = 40
"""Below this a class borrows the residuals of its whole lead node."""
ADAPT_RATE: Final = 0.002
"""Step of a lead node's coverage level per residual (adaptive conformal inference, Gibbs &
Candès 2021): a node sees about 12 residuals an hour, so a day on which the band missed 30 %
instead of 20 % raises the level by 0.002 · 0.1 · 288 ≈ 0.06: it follows a change of regime
within a day or two, while the level's own noise stays a few hundredths."""
MIN_LEVEL: Final = 0.5
"""The level never drops below the median absolute residual."""
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


def band_class(y: Array, scale: Array, low_scale: bool) -> IntArray:
    """Residual class of each row: its predicted level y, or (with ``low_scale``) the low-sun
    class when the scale s is under LOW_SCALE."""
    c = level_class(y)
    if low_scale:
        c = np.where(scale < LOW_SCALE, LEVEL_EDGES.size + 1, c)
    return np.asarray(c, dtype=np.int64)


class ResidualBand:
    """Half-width of the P10–P90 band per lead node and residual class: a conformal band.

    The scores are absolute out-of-sample residuals |y − ŷ|, kept per (lead node, class); the
    band is ŷ ± their quantile at the node's coverage level.  Symmetric on purpose: with the
    same data the two tails of a signed pool are each estimated from half the information, and
    a pool's lean (the last days' weather above or below the forecast) says little about the
    next days, much as the residuals' median, added to P50, chased the weather.  Where y cannot
    go (below zero, above the ceiling) the final clip to [0, capacity] cuts the band.

    *Coverage steered online.*  Errors are not exchangeable over days (weather regimes), so a
    quantile of past scores at exactly 80 % covers less than 80 % when the regime turns.  Each
    node's level therefore follows adaptive conformal inference: every new residual is checked
    against the scores' quantile at the node's current level in the pool it will join, and the
    level moves by ADAPT_RATE · (miss − 0.2), which brings the long-run miss rate of any
    sequence to 20 % whatever its distribution (while the level stays within its bounds).

    Until a class has seen much, its width is shrunk towards its whole node's, and that towards
    a prior set by the forecaster: what a forecast without skill would have (the spread of y
    about its mean, weighed against the plant's range while the forecaster is young).
    The prior counts as one lead's worth of residuals, max(L, 1 h) of 5-minute targets: within
    one lead the residuals come from the same weather, so that is about one independent sample
    of it.  Width never shrinks with lead: an error that a forecast cannot avoid at 6 h it
    cannot avoid at 12 h.
    """

    def __init__(self, classes: int) -> None:
        # one ring buffer per (node, class), and a last column per node that keeps the node's
        # newest scores whatever their class: the lower-resolution fallback
        self._classes = classes
        shape = (LEAD_GRID_S.size, classes + 1)
        self._buf = np.full((*shape, KEEP_RESIDUALS), np.nan)
        self._count = np.zeros(shape, dtype=np.intp)
        self._next = np.zeros(shape, dtype=np.intp)
        self._level = np.full(LEAD_GRID_S.size, COVERAGE)
        self._table: Array | None = None
        self._raw_cache: Array | None = None
        self._prior = 0.0

    @property
    def levels(self) -> Array:
        """Coverage level of each lead node (a copy)."""
        return self._level.copy()

    def set_prior(self, half_width: float) -> None:
        """The no-skill half-width: the COVERAGE quantile of |y − mean y| in recent history."""
        if half_width != self._prior:
            self._prior = float(half_width)
            self._table = None

    def add(self, lead_s: Array, cls: IntArray, residual: Array) -> None:
        """Residuals y − ŷ at these leads and classes: first scored against the band, then kept."""
        ok = np.isfinite(residual)
        if not ok.any():
            return
        nodes = LEAD_GRID_S.size
        node = nearest_node(lead_s[ok])
        c = cls[ok]
        score = np.abs(residual[ok])
        # adaptive conformal step per node: a miss is a score above the node's level among
        # the scores its band rests on (its class's, or its whole node's while the class is
        # young); scores with nothing to be judged against yet are not counted
        raw = self._raw()
        pooled = self._classes
        threshold = np.where(
            self._count[node, c] >= MIN_RESIDUALS,
            raw[node, c],
            np.where(self._count[node, pooled] >= MIN_RESIDUALS, raw[node, pooled], np.nan),
        )
        judged = np.isfinite(threshold)
        missed = np.bincount(node[judged & (score > threshold)], minlength=nodes)
        step = ADAPT_RATE * (missed - (1.0 - COVERAGE) * np.bincount(node[judged], minlength=nodes))
        self._level = np.clip(self._level + step, MIN_LEVEL, 1.0)
        columns = self._classes + 1
        for group in (node * columns + c, node * columns + pooled):
            for g in np.unique(group).tolist():
                n, k = divmod(g, columns)
                r = score[group == g][-KEEP_RESIDUALS:]
                slots = (self._next[n, k] + np.arange(r.size)) % KEEP_RESIDUALS
                self._buf[n, k, slots] = r
                self._next[n, k] = (self._next[n, k] + r.size) % KEEP_RESIDUALS
                self._count[n, k] = min(self._count[n, k] + r.size, KEEP_RESIDUALS)
        self._raw_cache = None
        self._table = None

    def _raw(self) -> Array:
        """The scores' quantile at each node's level, per (node, class) and (last column) per
        node; NaN where empty.  Computed once per change of the pools: the same sort serves
        the band and the next adaptive step."""
        if self._raw_cache is None:
            # NaN, the unfilled slots, sort last
            self._raw_cache = _sorted_quantile(
                np.sort(self._buf, axis=2), self._count, self._level[:, None]
            )
        return self._raw_cache

    def table(self) -> Array:
        """Half-widths, shape (nodes, classes); the prior where nothing is known yet."""
        if self._table is None:
            self._table = self._compute()
        return self._table

    def half_width(self, lead_s: Array, cls: IntArray) -> Array:
        """Half-width of the band for each row, interpolated between lead nodes."""
        t = self.table()
        lo, frac = tent(lead_s)
        return np.asarray(t[lo, cls] * (1.0 - frac) + t[lo + 1, cls] * frac, dtype=np.float64)

    def _compute(self) -> Array:
        nodes, classes = LEAD_GRID_S.size, self._classes
        prior_n = np.maximum(LEAD_GRID_S, HOUR_S) / TARGET_S
        pooled_n = self._count[:, classes].astype(np.float64)
        known = np.flatnonzero(pooled_n > 0)
        if known.size == 0:
            return np.full((nodes, classes), self._prior)
        raw = np.nan_to_num(self._raw())
        base = (pooled_n * raw[:, classes] + prior_n * self._prior) / (pooled_n + prior_n)
        # leads shorter than any seen borrow the shortest seen; longer ones, the prior
        base[: known[0]] = base[known[0]]
        base[known[-1] + 1 :] = self._prior
        for n in range(nodes):
            if pooled_n[n] == 0:
                base[n] = base[known[np.argmin(np.abs(known - n))]]
        counts = self._count[:, :classes].astype(np.float64)
        shrunk = (counts * raw[:, :classes] + prior_n[:, None] * base[:, None]) / (
            counts + prior_n[:, None]
        )
        out = np.where(counts >= MIN_RESIDUALS, shrunk, base[:, None])
        # the width does not shrink with lead (isotonic fit, weighted by how much each node
        # has seen): what is unavoidable at 6 h is so at 12 h
        weight = counts + 1.0
        for c in range(classes):
            out[:, c] = isotonic_increasing(out[:, c], weight[:, c])
        return np.asarray(out, dtype=np.float64)


def _sorted_quantile(ordered: Array, counts: IntArray, level: Array) -> Array:
    """The ``level`` quantile of each row of ``ordered`` (sorted, first ``counts`` entries
    valid), with numpy's default linear interpolation; NaN for empty rows.  ``level``
    broadcasts against ``counts``."""
    k = counts.astype(np.float64)
    pos = np.broadcast_to(level, k.shape) * np.maximum(k - 1.0, 0.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(k.astype(np.int64) - 1, 0))
    frac = pos - lo
    a = np.take_along_axis(ordered, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(ordered, hi[..., None], axis=-1)[..., 0]
    return np.asarray(np.where(k > 0, a + frac * (b - a), np.nan), dtype=np.float64)
