"""Buy again: rank the customer's own past items by repurchase propensity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from personalize import _sets
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


class _PurchaseDays(Recommender):
    """Shared by the models that rank a customer's own past items from the days they were bought.

    Fitted: ``state_`` (customer x item CSR of purchase days), ``last_day_`` (the last purchase day of
    each stored pair, aligned with ``state_.data``) and ``now_day_`` (the last day of the data). Live
    purchases are counted per day on top (the fitted state never changes). Items the customer never
    bought get nothing from these models: the fallback chain fills the rest. Default ``exclude`` is
    None (the point is to show past items).
    """

    default_exclude = "none"

    def _fit_days(self, ds, n_c: int, n_i: int):
        """Purchase days per (customer, item): fills the fitted state and returns (rows, cols, counts, first, last)."""
        # in place where it can be: every line-length temporary is 160 MB at 20M lines
        key = ds.customer_idx.astype(np.int64)
        key *= n_i
        key += ds.item_idx
        day = _days(ds.transactions["timestamp"].to_numpy()).astype(np.int64)
        if len(key):
            dmin = int(day.min())
            span = int(day.max() - dmin + 1)
            key *= span
            day -= dmin
            key += day
            del day
            uk = _sets.unique(key)
            del key
            pkey, pday = uk // span, (uk % span + dmin).astype(np.float64)
            del uk
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
        self.now_day_ = float(_days([self.now_])[0])
        return rows, cols, counts, first, last

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
            base_rows = base_rows[~_sets.isin(base_rows, np.fromiter(live, np.int64, len(live)))]
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

    def _now(self, now_ns: int | None) -> float:
        now = self.now_day_
        if now_ns is not None:  # live purchases move the clock forward
            now = max(now, float(_days(np.array([now_ns], dtype="datetime64[ns]"))[0]))
        return now

    def _pair_scores(self, j: np.ndarray, n: np.ndarray, last: np.ndarray, now_ns: int | None
                     ) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

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
                "model_now_day": np.asarray([self.now_day_])}

    def _set_arrays(self, saved):
        super()._set_arrays(saved)
        a = saved.arrays
        self.state_ = csr_from_arrays("model_state", a)
        self.last_day_ = a["model_last_day"]
        self.now_day_ = float(a["model_now_day"][0])


class Repurchase(_PurchaseDays):
    """The plain repurchase baseline: the customer's past items, most often bought first.

    ``score = purchase days + 0.5 / (1 + days since the last one)``: the number of days the customer
    bought the item, ties broken by the most recent. No parameters beyond the shared fallback ones;
    :class:`BuyAgain` must never rank repeat purchases worse than this.
    """

    kind = "repurchase"

    def _fit(self, ds, X) -> None:
        self._fit_days(ds, *X.shape)

    def _pair_scores(self, j, n, last, now_ns):
        d = np.maximum(self._now(now_ns) - last, 0.0)
        return n + 0.5 / (1.0 + d)


class BuyAgain(_PurchaseDays):
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

    ``cycle_multiplier`` and ``repeat_rate_power`` left None (the default) are
    chosen on the data: the model is fitted on the history before a validation
    window (the last ``validation_days``; None = a fifth of the history,
    between 7 and 28 days) and every pair of values from the grid
    ``cycle_multiplier`` in {1, 4, 16, inf} x ``repeat_rate_power`` in
    {0, 0.5, 1} ranks that window's repeat purchases (NDCG@10 of the past
    items); the best pair is used for the fit on all the data. ``inf`` means no
    decay: with ``repeat_rate_power`` 0 and ``frequency_power`` 1 that is the
    :class:`Repurchase` baseline's ordering (most purchase days first, the most
    recent first among equals), so on the validation window BuyAgain never
    ranks repeat purchases worse than that baseline. Histories shorter than
    three validation windows use 4 and 1. Fitted: ``cycle_multiplier_``,
    ``repeat_rate_power_`` (the values used) and ``validation_`` (the window,
    the score of every grid point and what was chosen).
    """

    kind = "buyagain"
    CYCLE_GRID = (4.0, 1.0, 16.0, float("inf"))  # the former defaults first: they win ties
    RATE_GRID = (1.0, 0.5, 0.0)

    def __init__(self, *, frequency_power: float = 1.0, repeat_rate_power: float | None = None,
                 cycle_multiplier: float | None = None, min_scale_days: float = 30.0, prior_strength: float = 5.0,
                 validation_days: float | None = None, fallback=DEFAULT_FALLBACK, trending_days: float = 30.0,
                 session_neighbors: int = 20) -> None:
        super().__init__(fallback=fallback, trending_days=trending_days, session_neighbors=session_neighbors)
        self.frequency_power = frequency_power
        self.repeat_rate_power = repeat_rate_power
        self.cycle_multiplier = cycle_multiplier
        self.min_scale_days = min_scale_days
        self.prior_strength = prior_strength
        self.validation_days = validation_days

    def _validate_params(self) -> None:
        super()._validate_params()

        def number(name, *, positive: bool, allow_none: bool = False, allow_inf: bool = False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            ok = not isinstance(v, bool) and isinstance(v, (int, float)) and not np.isnan(v)
            ok = ok and (v > 0 if positive else v >= 0) and (allow_inf or np.isfinite(v))
            if not ok:
                raise ParameterError(f"{name} must be a {'positive number' if positive else 'number >= 0'}"
                                     f"{' or None' if allow_none else ''}, got {v!r}")

        number("frequency_power", positive=False)
        number("prior_strength", positive=False)
        number("repeat_rate_power", positive=False, allow_none=True)
        number("cycle_multiplier", positive=True, allow_none=True)
        number("min_scale_days", positive=True)
        number("validation_days", positive=True, allow_none=True)

    # ------------------------------------------------------------------ fit
    def _fit(self, ds, X) -> None:
        n_c, n_i = X.shape
        self.cycle_multiplier_, self.repeat_rate_power_, self.validation_ = self._choose(ds, n_i)
        rows, cols, counts, first, last = self._fit_days(ds, n_c, n_i)
        self.item_cycle_, self.repeat_rate_ = self._item_rates(cols, counts, first, last, n_i)

    def _item_rates(self, cols, counts, first, last, n_i: int) -> tuple[np.ndarray, np.ndarray]:
        """Each item's repurchase cycle and repeat rate, shrunk to the all-item values."""
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
        cycle = (repeaters * med + a * glob_cycle) / np.maximum(repeaters + a, 1e-12)
        rate = (repeaters + a * glob_rate) / np.maximum(buyers + a, 1e-12)
        return cycle, rate

    def _scores(self, n, d, cycle, rate, multiplier: float, rate_power: float) -> np.ndarray:
        base = (n ** self.frequency_power) * (rate ** rate_power)
        if np.isinf(multiplier):  # no decay; the most recent first among equals (the Repurchase ordering)
            return np.maximum(base * (1.0 + 0.5 / ((1.0 + d) * np.maximum(n, 1.0))), 1e-30)
        scale = np.maximum(multiplier * cycle, self.min_scale_days)
        return np.maximum(base * np.exp(-d / scale), 1e-30)

    def _choose(self, ds, n_i: int) -> tuple[float, float, dict]:
        """(cycle_multiplier, repeat_rate_power, validation record): given values, or the best on a window."""
        cms = (float(self.cycle_multiplier),) if self.cycle_multiplier is not None else self.CYCLE_GRID
        rps = (float(self.repeat_rate_power),) if self.repeat_rate_power is not None else self.RATE_GRID
        if len(cms) * len(rps) == 1:
            return cms[0], rps[0], {"status": "given"}
        fallback = (cms[0], rps[0])
        if len(ds) == 0:
            return *fallback, {"status": "skipped", "reason": "no transactions"}
        end = ds.last_timestamp + pd.Timedelta(1, "us")
        span = (end - ds.first_timestamp) / pd.Timedelta(days=1)
        vd = float(self.validation_days) if self.validation_days is not None else min(28.0, max(7.0, span / 5.0))
        if span < 3 * vd:
            return *fallback, {"status": "skipped", "reason": f"history of {span:.1f} days is shorter than three "
                                                              f"validation windows of {vd:g} days"}
        cutoff = end - pd.Timedelta(days=vd)
        inner, later = ds.until(cutoff), ds.between(cutoff, end)
        n_c = len(ds.customer_vocab)
        shadow = _PurchaseDays.__new__(_PurchaseDays)  # the inner data's purchase days, without touching self
        shadow.now_ = inner.last_timestamp
        rows, cols, counts, first, last = shadow._fit_days(inner, n_c, n_i)
        cycle, rate = self._item_rates(cols, counts, first, last, n_i)
        label = _sets.unique(later.customer_idx.astype(np.int64) * n_i + later.item_idx)
        who = _sets.intersect1d(_sets.unique(label // n_i), _sets.unique(rows))
        if not len(who):
            return *fallback, {"status": "skipped", "reason": "nobody with earlier purchases bought in the "
                                                              "validation window"}
        sel = _sets.isin(rows, who)
        rs, j, n, dd = rows[sel], cols[sel], counts[sel], shadow.now_day_ - last[sel]
        del rows, cols, counts, first, last, sel, shadow  # the window's customers' pairs are all that is scored
        r = np.searchsorted(who, rs)
        hit = _sets.isin(rs * n_i + j, label).astype(np.float64)
        del rs
        n_rel = np.bincount(np.searchsorted(who, label[_sets.isin(label // n_i, who)] // n_i), minlength=len(who))
        disc = 1.0 / np.log2(np.arange(2, 12))
        idcg = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_rel, 10)]
        scores = {}
        start = np.searchsorted(r, r, side="left")  # r is sorted: where each customer's pairs begin
        for cm in cms:
            for rp in rps:
                s = self._scores(n, np.maximum(dd, 0.0), cycle[j], rate[j], cm, rp)
                # by customer, best first (stable: the item index breaks ties); one float key sorts both
                key = r - np.log1p(s) / (np.log1p(s).max() * (1 + 1e-9) + 1e-300)
                order = np.argsort(key, kind="stable")
                rank = np.empty(len(r), np.int64)
                rank[order] = np.arange(len(r)) - start[order]
                top = rank < 10
                dcg = np.bincount(r[top], weights=hit[top] * disc[rank[top]], minlength=len(who))
                scores[(cm, rp)] = float(np.mean(dcg / idcg))
        best = max(scores, key=lambda key: scores[key])  # the first of equals: the grid's order
        label_of = (lambda cm: "inf" if np.isinf(cm) else cm)  # JSON has no infinity
        return best[0], best[1], {
            "status": "ok", "window": {"start": cutoff.isoformat(), "end": end.isoformat(), "days": round(vd, 3)},
            "customers": int(len(who)), "metric": "NDCG@10 of the past items",
            "scores": [{"cycle_multiplier": label_of(cm), "repeat_rate_power": rp, "ndcg": round(v, 6)}
                       for (cm, rp), v in scores.items()],
            "chosen": {"cycle_multiplier": label_of(best[0]), "repeat_rate_power": best[1]}}

    def _pair_scores(self, j: np.ndarray, n: np.ndarray, last: np.ndarray, now_ns: int | None) -> np.ndarray:
        d = np.maximum(self._now(now_ns) - last, 0.0)
        return self._scores(n, d, self.item_cycle_[j], self.repeat_rate_[j], self.cycle_multiplier_,
                            self.repeat_rate_power_)

    # ------------------------------------------------------------------ arrays
    def to_arrays(self):
        return {**super().to_arrays(), "model_item_cycle": self.item_cycle_, "model_repeat_rate": self.repeat_rate_,
                "model_chosen": np.asarray([self.cycle_multiplier_, self.repeat_rate_power_], dtype=np.float64)}

    def to_meta(self):
        return {**super().to_meta(), "validation": self.validation_}

    def _set_arrays(self, saved):
        super()._set_arrays(saved)
        a = saved.arrays
        self.item_cycle_ = a["model_item_cycle"]
        self.repeat_rate_ = a["model_repeat_rate"]
        self.cycle_multiplier_, self.repeat_rate_power_ = (float(v) for v in a["model_chosen"])
        self.validation_ = saved.meta.get("validation") or {}
