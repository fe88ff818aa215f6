"""Buy again: rank the customer's own past items by repurchase propensity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from personalize.recommenders.base import DEFAULT_FALLBACK, _NEG, Recommender, csr_gather
from personalize.recommenders.filters import ParameterError
from personalize.recommenders.io import csr_from_arrays, csr_to_arrays

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
    default_exclude = None

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
        self._buy_live = {}
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
    def _state_coords(self, c: np.ndarray):
        c = np.asarray(c, dtype=np.int64)
        live = self._buy_live
        S = self.state_
        nb = S.shape[0]
        is_live = (np.fromiter((int(x) in live for x in c), dtype=bool, count=len(c)) if live
                   else np.zeros(len(c), dtype=bool))
        base_rows = np.flatnonzero(~is_live & (c < nb))
        r, pos = csr_gather(S.indptr, c[base_rows])
        r = base_rows[r]
        j, n, last = S.indices[pos].astype(np.int64), S.data[pos].astype(np.float64), self.last_day_[pos]
        if is_live.any():
            rs, js, ns, ls = [r], [j], [n], [last]
            for p in np.flatnonzero(is_live):
                lj, ln, ll = live[int(c[p])]
                rs.append(np.full(len(lj), p, np.int64))
                js.append(lj)
                ns.append(ln)
                ls.append(ll)
            r, j, n, last = (np.concatenate(x) for x in (rs, js, ns, ls))
        return r, j, n, last

    def _pair_scores(self, j: np.ndarray, n: np.ndarray, last: np.ndarray) -> np.ndarray:
        now = max(self.now_day_, float(_days([self.now_])[0]))
        d = np.maximum(now - last, 0.0)
        scale = np.maximum(self.cycle_multiplier * self.item_cycle_[j], self.min_scale_days)
        s = (n ** self.frequency_power) * (self.repeat_rate_[j] ** self.repeat_rate_power) * np.exp(-d / scale)
        return np.maximum(s, 1e-30)

    def _make_scorer(self, cols, width):
        def score(c, hist, out, colpos):
            out.fill(_NEG)
            r, j, n, last = self._state_coords(c)
            if not len(j):
                return
            s = self._pair_scores(j, n, last).astype(np.float32)
            if colpos is not None:
                j = colpos[j]
                keep = j >= 0
                r, j, s = r[keep], j[keep], s[keep]
            out[r, j] = s

        return score

    def _explain_contrib(self, cidx, iidx, hi, hw):
        r, j, n, last = self._state_coords(np.array([cidx]))
        hit = j == iidx
        if not hit.any():
            return super()._explain_contrib(cidx, iidx, hi, hw)
        contrib = np.zeros(len(hi))
        contrib[hi == iidx] = self._pair_scores(j[hit], n[hit], last[hit])[0]
        return contrib

    def _update_model(self, cidx, items, ts):
        r, j, n, last = self._state_coords(np.array([cidx]))
        state = {int(a): [float(b), float(c)] for a, b, c in zip(j, n, last)}
        for it, dd in zip(items, _days(ts.to_numpy())):
            cur = state.get(int(it))
            if cur is None:
                state[int(it)] = [1.0, dd]
            elif dd > cur[1]:
                cur[0] += 1.0
                cur[1] = dd
        keys = np.array(sorted(state), dtype=np.int64)
        self._buy_live[int(cidx)] = (keys, np.array([state[k][0] for k in keys]),
                                     np.array([state[k][1] for k in keys]))
        self.now_day_ = max(self.now_day_, float(_days(ts.to_numpy()).max()))

    def _post_state(self) -> None:
        super()._post_state()
        self._buy_live = getattr(self, "_buy_live", {})

    # ------------------------------------------------------------------ persistence
    def _model_arrays(self):
        S, last = self.state_, self.last_day_
        if self._buy_live:
            n_total = max(S.shape[0], max(self._buy_live) + 1)
            coo_r = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
            keep = ~np.isin(coo_r, np.fromiter(self._buy_live, dtype=np.int64))
            rs, js, ns, ls = [coo_r[keep]], [S.indices[keep].astype(np.int64)], [S.data[keep]], [last[keep]]
            for ci, (lj, ln, ll) in self._buy_live.items():
                rs.append(np.full(len(lj), ci, np.int64))
                js.append(lj)
                ns.append(ln)
                ls.append(ll)
            r, j, n, ll = (np.concatenate(x) for x in (rs, js, ns, ls))
            order = np.lexsort((j, r))
            r, j, n, ll = r[order], j[order], n[order], ll[order]
            indptr = np.r_[0, np.cumsum(np.bincount(r, minlength=n_total))].astype(np.int64)
            S = sp.csr_matrix((n.astype(np.float32), j.astype(np.int32), indptr), shape=(n_total, S.shape[1]))
            last = ll
        return {**csr_to_arrays("state", S), "last_day": last, "item_cycle": self.item_cycle_,
                "repeat_rate": self.repeat_rate_, "now_day": np.asarray([self.now_day_])}

    def _load_model_arrays(self, a, meta):
        self.state_ = csr_from_arrays("state", a)
        self.last_day_ = a["last_day"]
        self.item_cycle_ = a["item_cycle"]
        self.repeat_rate_ = a["repeat_rate"]
        self.now_day_ = float(a["now_day"][0])
