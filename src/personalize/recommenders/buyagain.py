"""Buy again: rank the customer's own past items by repurchase propensity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from personalize.errors import ParameterError
from personalize.recommenders.base import Recommender
from personalize.recommenders.fallback import DEFAULT_FALLBACK
from personalize.recommenders.history import Batch
from personalize.recommenders.io import csr_from_arrays, csr_to_arrays
from personalize.recommenders.live import CustomerEvents
from personalize.recommenders.topk import NEG, csr_gather

_EPOCH = np.datetime64("1970-01-01", "D")


def _days(ts) -> np.ndarray:
    return ((np.asarray(ts, dtype="datetime64[ns]").astype("datetime64[D]") - _EPOCH)
            .astype(np.int64).astype(np.float64))


class BuyAgain(Recommender):
    """Repurchase propensity of each (customer, past item) pair.

    Purchases are counted per calendar day. For customer u and item i with
    ``n`` purchase days, the last ``d`` days before now::

        score = n ** frequency_power * repeat_rate_i ** repeat_rate_power * exp(-d / scale_i)
        scale_i = max(cycle_multiplier * cycle_i, min_scale_days)

    ``cycle_i`` is the item's typical repurchase cycle (median over customers
    who bought it on two or more days of their mean days between purchases)
    and ``repeat_rate_i`` the share of its buyers who bought it again; both are
    shrunk towards the all-item values with weight ``prior_strength``
    customers. Short-cycle items (consumables) fade fast when not rebought,
    long-cycle items slowly. Items the customer never bought get nothing from
    this model: the fallback chain fills the rest. Default ``exclude`` is None
    (the point is to show past items).
    """

    kind = "buyagain"
    default_exclude = "none"

    def __init__(self, *, frequency_power: float = 1.0, repeat_rate_power: float = 1.0,
                 cycle_multiplier: float = 4.0, min_scale_days: float = 30.0, prior_strength: float = 5.0,
                 fallback=DEFAULT_FALLBACK, trending_days: float = 30.0, session_neighbors: int = 20) -> None:
        super().__init__(fallback=fallback, trending_days=trending_days, session_neighbors=session_neighbors)
        self.frequency_power = frequency_power
        self.repeat_rate_power = repeat_rate_power
        self.cycle_multiplier = cycle_multiplier
        self.min_scale_days = min_scale_days
        self.prior_strength = prior_strength

    def _validate_params(self) -> None:
        super()._validate_params()
        for name in ("frequency_power", "repeat_rate_power", "prior_strength"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ParameterError(f"{name} must be a number >= 0, got {v!r}")
        for name in ("cycle_multiplier", "min_scale_days"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ParameterError(f"{name} must be a positive number, got {v!r}")

    # ------------------------------------------------------------------ fit
    def _fit(self, ds, X) -> None:
        n_c, n_i = X.shape
        ci = ds.customer_idx.astype(np.int64)
        ii = ds.item_idx.astype(np.int64)
        day = _days(ds.transactions["timestamp"].to_numpy()).astype(np.int64)
        key = ci * n_i + ii
        if len(key):
            span = int(day.max() - day.min() + 1)
            uk = np.unique(key * span + (day - day.min()))
            pkey, pday = uk // span, (uk % span + day.min()).astype(np.float64)
            starts = np.r_[0, np.flatnonzero(np.diff(pkey)) + 1]
            keys = pkey[starts]
            counts = np.diff(np.r_[starts, len(pkey)]).astype(np.float64)
            first = pday[starts]
            last = np.maximum.reduceat(pday, starts)
        else:
            keys = np.zeros(0, np.int64)
            counts = first = last = np.zeros(0)
        rows, cols = keys // n_i, keys % n_i
        indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=n_c))].astype(np.int64)
        self.state_ = sp.csr_matrix((counts.astype(np.float32), cols.astype(np.int32), indptr), shape=(n_c, n_i))
        self.last_day_ = last.astype(np.float64)     # aligned with state_.data
        # item repurchase cycle and repeat rate, shrunk to the all-item values
        rep = counts >= 2
        interval = np.where(rep, (last - first) / np.maximum(counts - 1, 1), np.nan)
        buyers = np.bincount(cols, minlength=n_i).astype(np.float64)
        repeaters = np.bincount(cols[rep], minlength=n_i).astype(np.float64)
        glob_rate = float(repeaters.sum() / buyers.sum()) if buyers.sum() else 0.0
        glob_cycle = float(np.median(interval[rep])) if rep.any() else 30.0
        med = np.full(n_i, glob_cycle)
        if rep.any():
            s = pd.Series(interval[rep]).groupby(cols[rep]).median()
            med[s.index.to_numpy()] = s.to_numpy()
        a = float(self.prior_strength)
        self.item_cycle_ = (repeaters * med + a * glob_cycle) / np.maximum(repeaters + a, 1e-12)
        self.repeat_rate_ = (repeaters + a * glob_rate) / np.maximum(buyers + a, 1e-12)
        self.now_day_ = float(_days([self.now_])[0])

    # ------------------------------------------------------------------ state access
    def _row_state(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(items, purchase days, last day) of fitted customer row ``c`` (empty for -1)."""
        S = self.state_
        if c < 0 or c >= S.shape[0]:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
        s, e = S.indptr[c], S.indptr[c + 1]
        return S.indices[s:e].astype(np.int64), S.data[s:e].astype(np.float64), self.last_day_[s:e]

    @staticmethod
    def _with_events(j: np.ndarray, n: np.ndarray, last: np.ndarray, ev: CustomerEvents):
        """A customer's (items, purchase days, last day) after their live purchases (counted per day)."""
        state = {int(a): [float(b), float(c)] for a, b, c in zip(j, n, last)}
        for it, dd in zip(ev.items.tolist(), _days(ev.ns.astype("datetime64[ns]")).tolist()):
            cur = state.get(it)
            if cur is None:
                state[it] = [1.0, dd]
            elif dd > cur[1]:
                cur[0] += 1.0
                cur[1] = dd
        keys = np.array(sorted(state), dtype=np.int64)
        return keys, np.array([state[k][0] for k in keys]), np.array([state[k][1] for k in keys])

    def _state_coords(self, batch: Batch):
        """(block position, item, purchase days, last day) of every (customer, past item) pair in the batch."""
        c = batch.cidx
        S = self.state_
        live = batch.events
        base_rows = np.flatnonzero((c >= 0) & (c < S.shape[0]))
        if live:
            base_rows = base_rows[~np.isin(base_rows, np.fromiter(live, np.int64, len(live)))]
        r, pos = csr_gather(S.indptr, c[base_rows])
        r = base_rows[r]
        j, n, last = S.indices[pos].astype(np.int64), S.data[pos].astype(np.float64), self.last_day_[pos]
        if live:
            rs, js, ns, ls = [r], [j], [n], [last]
            for p, ev in live.items():
                lj, ln, ll = self._with_events(*self._row_state(int(c[p])), ev)
                rs.append(np.full(len(lj), p, np.int64))
                js.append(lj)
                ns.append(ln)
                ls.append(ll)
            r, j, n, last = (np.concatenate(x) for x in (rs, js, ns, ls))
        return r, j, n, last

    def _pair_scores(self, j: np.ndarray, n: np.ndarray, last: np.ndarray, now_ns: int | None) -> np.ndarray:
        now = self.now_day_
        if now_ns is not None:  # live purchases move the clock forward
            now = max(now, float(_days(np.array([now_ns], dtype="datetime64[ns]"))[0]))
        d = np.maximum(now - last, 0.0)
        scale = np.maximum(self.cycle_multiplier * self.item_cycle_[j], self.min_scale_days)
        s = (n ** self.frequency_power) * (self.repeat_rate_[j] ** self.repeat_rate_power) * np.exp(-d / scale)
        return np.maximum(s, 1e-30)

    def _make_scorer(self, query, cols, width):
        def score(batch, out, colpos):
            out.fill(NEG)
            r, j, n, last = self._state_coords(batch)
            if not len(j):
                return
            s = self._pair_scores(j, n, last, batch.now_ns).astype(np.float32)
            if colpos is not None:
                j = colpos[j]
                keep = j >= 0
                r, j, s = r[keep], j[keep], s[keep]
            out[r, j] = s

        return score

    def _explain_contrib(self, batch, iidx, hi, hw):
        r, j, n, last = self._state_coords(batch)
        hit = j == iidx
        if not hit.any():
            return super()._explain_contrib(batch, iidx, hi, hw)
        contrib = np.zeros(len(hi))
        contrib[hi == iidx] = self._pair_scores(j[hit], n[hit], last[hit], batch.now_ns)[0]
        return contrib

    # ------------------------------------------------------------------ arrays
    def to_arrays(self):
        return {**super().to_arrays(), **csr_to_arrays("model_state", self.state_), "model_last_day": self.last_day_,
                "model_item_cycle": self.item_cycle_, "model_repeat_rate": self.repeat_rate_,
                "model_now_day": np.asarray([self.now_day_])}

    def _set_arrays(self, saved):
        super()._set_arrays(saved)
        a = saved.arrays
        self.state_ = csr_from_arrays("model_state", a)
        self.last_day_ = a["model_last_day"]
        self.item_cycle_ = a["model_item_cycle"]
        self.repeat_rate_ = a["model_repeat_rate"]
        self.now_day_ = float(a["model_now_day"][0])
