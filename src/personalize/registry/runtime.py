"""What the service does, as library calls over one loaded bundle.

:class:`Runtime` wraps a verified :class:`~personalize.registry.store.Bundle`
and answers recommendations, session recommendations, similar items,
profiles and audience exports; it applies purchase events to the recommender
(``update_customer``) and refreshes that customer's candidate list so their
next recommendations change at once. The HTTP layer only parses, calls one of
these methods and serializes.

Recommendations read the bundle's precomputed :class:`CandidateTable` and
filter it with numpy masks (exclusions, category, stock); when fewer than
``k`` candidates survive the filters and the table was cut short, the
recommender itself is asked with the same filters.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from personalize._json import json_scalar
from personalize.churn.audience import PERSONAL_COLUMNS, audience_mask
from personalize.errors import DataError, PersonalizeError, UnknownIdError
from personalize.registry.candidates import CandidateTable
from personalize.registry.store import Bundle, MissingComponentError

__all__ = ["Runtime", "Recommendations", "EXCLUDE_MODES", "CONSENT_CHANNELS"]

EXCLUDE_MODES = ("purchased", "non_repeatable", "none")
CONSENT_CHANNELS = ("email", "sms", "personalization")
# PERSONAL_COLUMNS (personalize.churn.audience): shown in a profile (scope "profile"), never in an audience export
#: text labels an export may carry besides numeric scores
LABEL_COLUMNS = frozenset({"segment", "tier", "lifecycle", "rfm", "persona", "next_tier", "churn_band",
                           "churn_reasons", "top_category"})
DEFAULT_AUDIENCE_FIELDS = ("segment", "tier", "lifecycle", "recency_days", "orders", "monetary", "clv", "p_alive",
                           "churn_risk", "churn_band")
#: profile sections: response key -> {response field: customer-table column}
_RFM_FIELDS = {"R": "R", "F": "F", "M": "M", "score": "rfm", "recency_days": "recency_days", "orders": "orders",
               "monetary": "monetary"}
_CLV_FIELDS = {"clv": "clv", "clv_simple": "clv_simple", "p_alive": "p_alive",
               "expected_purchases": "expected_purchases", "expected_spend": "expected_spend"}

_EMPTY_I = np.zeros(0, dtype=np.int32)
log = logging.getLogger(__name__)


@dataclass
class Recommendations:
    customer_id: str | None
    items: list[dict]
    fallback: bool
    model_version: str


@dataclass
class _Live:
    """Candidates and purchases of a customer changed by events since the bundle was loaded."""

    items: np.ndarray
    scores: np.ndarray
    sources: np.ndarray
    bought: np.ndarray


def _py(v: Any) -> Any:
    """A customer-table cell as a JSON value; anything else that is not plain JSON becomes its text."""
    v = json_scalar(v)
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)


class Runtime:
    """One loaded bundle plus the real-time state built on top of it."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.version = bundle.version
        self.manifest = bundle.manifest
        self.model = bundle.get("recommender")
        self.popular = bundle.get("popular")
        cands = bundle.get("candidates")
        if cands is None and self.model is None:
            raise PersonalizeError(f"bundle {bundle.version} has neither a recommender nor candidates")
        self.cands: CandidateTable | None = cands
        self._live: dict[str, _Live] = {}
        self._lock = threading.Lock()
        self.update_failures = 0
        self._tls = threading.local()
        self.customers = self._prepare_customers(bundle.get("customers"))
        self._cust_row = (pd.Index(self.customers["customer_id"]) if self.customers is not None else None)
        self.churn_model = bundle.get("churn")
        self.churn_info: dict = dict(((self.manifest.get("extra") or {}).get("churn")) or {})
        self.has_churn = self.customers is not None and "churn_risk" in self.customers.columns
        self.as_of = self.churn_info.get("as_of") or self._data_end(self.manifest)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _data_end(manifest: dict) -> str | None:
        """Midnight after the last transaction day: the ``as_of`` of the customer table."""
        last = (manifest.get("data") or {}).get("last_timestamp")
        if not last:
            return None
        try:
            return (pd.Timestamp(last).normalize() + pd.Timedelta(days=1)).isoformat()
        except (TypeError, ValueError):
            return None

    def _scratch(self) -> np.ndarray:
        """An all-False boolean array over the catalog, one per thread (callers restore it to all-False)."""
        flag = getattr(self._tls, "flag", None)
        if flag is None:
            flag = self._tls.flag = np.zeros(len(self.cands.item_ids), dtype=bool)
        return flag

    @staticmethod
    def _prepare_customers(df: pd.DataFrame | None) -> pd.DataFrame | None:
        if df is None:
            return None
        if "customer_id" not in df:
            raise PersonalizeError("customers table in bundle has no customer_id column")
        df = df.assign(customer_id=df["customer_id"].astype(str))
        return df.sort_values("customer_id", kind="stable").reset_index(drop=True)

    def _filters(self, categories: Sequence[str] | None, in_stock: bool | None):
        if not categories and not in_stock:
            return None
        try:
            from personalize.recommenders import Filters
        except ImportError:  # recommenders package not installed: any object with these attributes will do
            from types import SimpleNamespace as Filters

        return Filters(categories=list(categories) if categories else None, in_stock=True if in_stock else None)

    def _row(self, customer_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool, bool]:
        """(items, scores, sources, bought, known, full) for a customer."""
        t = self.cands
        live = self._live.get(customer_id)
        if live is not None:
            full = bool(live.items.size >= t.n)
            return live.items, live.scores, live.sources, live.bought, True, full
        pos = t.customer_pos.get(customer_id)
        if pos is None:
            return t.cold_items, t.cold_scores, t.cold_sources, _EMPTY_I, False, bool(t.cold_items.size >= t.n)
        items = t.items[pos]
        bought = t.bought(pos)
        return items, t.scores[pos], t.sources[pos], bought, bought.size > 0, bool(items[-1] >= 0)

    def _frame_items(self, df: pd.DataFrame, k: int) -> list[dict]:
        df = df.head(k)
        return [{"item_id": str(i), "score": float(s), "rank": r + 1, "source": str(src)}
                for r, (i, s, src) in enumerate(zip(df["item_id"].tolist(), df["score"].tolist(),
                                                    df["source"].tolist() if "source" in df else
                                                    ["model"] * len(df)))]

    # ------------------------------------------------------------------ recommendations
    def recommend(self, customer_id: str, k: int = 10, *, categories: Sequence[str] | None = None,
                  in_stock: bool | None = None, exclude: str = "purchased") -> Recommendations:
        """Top-``k`` items for a customer; unknown customers get the fallback list (``fallback=True``)."""
        if exclude not in EXCLUDE_MODES:
            raise PersonalizeError(f"exclude must be one of {', '.join(EXCLUDE_MODES)}, got {exclude!r}")
        if k < 1:
            raise PersonalizeError(f"k must be at least 1, got {k}")
        if self.cands is None:
            return self._recommend_live(customer_id, k, categories, in_stock, exclude, known=None)
        t = self.cands
        items, scores, sources, bought, known, full = self._row(customer_id)
        mask = items >= 0
        if exclude != "none" and bought.size:
            flag = self._scratch()  # boolean lookup table over the catalog: O(n) instead of np.isin's sort
            flag[bought] = True
            hit = flag[items]
            flag[bought] = False
            if exclude == "non_repeatable":
                hit &= ~t.item_repeatable[items]
            mask &= ~hit
        if categories:
            wanted = np.zeros(len(t.categories) + 1, dtype=bool)  # last slot: items without a category (-1)
            for c in categories:
                pos = t.category_pos.get(c)
                if pos is not None:
                    wanted[pos] = True
            mask &= wanted[t.item_category[items]]
        if in_stock:
            mask &= t.item_in_stock[items]
        sel = np.flatnonzero(mask)[:k]
        if sel.size < k and full and self.model is not None:
            return self._recommend_live(customer_id, k, categories, in_stock, exclude, known=known)
        names = t.source_names
        ids = t.item_ids_list
        out = [{"item_id": ids[i], "score": float(s), "rank": r + 1, "source": names[src]}
               for r, (i, s, src) in enumerate(zip(items[sel].tolist(), scores[sel].tolist(),
                                                   sources[sel].tolist()))]
        return Recommendations(customer_id, out, not known, self.version)

    def _recommend_live(self, customer_id, k, categories, in_stock, exclude, *, known) -> Recommendations:
        df = self.model.recommend(customer_id, k=k, exclude=None if exclude == "none" else exclude,
                                  filters=self._filters(categories, in_stock))
        if known is None:
            known = bool(self.cands is not None and customer_id in self.cands.customer_pos) or \
                customer_id in self._live
        return Recommendations(customer_id, self._frame_items(df, k), not known, self.version)

    def recommend_from_items(self, item_ids: Sequence[str], k: int = 10, *, categories: Sequence[str] | None = None,
                             in_stock: bool | None = None) -> Recommendations:
        """Recommendations for an anonymous session or cart; unknown item ids are ignored."""
        known = [i for i in dict.fromkeys(item_ids) if self._item_known(i)]
        if known and self.model is not None:
            df = self.model.recommend_from_items(known, k=k + len(known), filters=self._filters(categories, in_stock))
            df = df[~df["item_id"].astype(str).isin(known)] if len(df) else df
            return Recommendations(None, self._frame_items(df, k), False, self.version)
        rec = self.recommend("\x00__anonymous__", k, categories=categories, in_stock=in_stock, exclude="none")
        return Recommendations(None, rec.items, True, self.version)

    def _item_known(self, item_id: str) -> bool:
        if self.cands is not None:
            return item_id in self.cands.item_pos
        return True

    def similar_items(self, item_id: str, k: int = 10) -> list[dict]:
        """Items similar to ``item_id``; raises :class:`UnknownIdError` for an item the bundle does not know."""
        if not self._item_known(item_id) or self.model is None:
            raise UnknownIdError(f"unknown item_id {item_id!r}")
        df = self.model.similar_items(item_id, k=k + 1)
        df = df[df["item_id"].astype(str) != item_id].head(k)
        return [{"item_id": str(i), "score": float(s), "rank": r + 1}
                for r, (i, s) in enumerate(zip(df["item_id"].tolist(), df["score"].tolist()))]

    # ------------------------------------------------------------------ events
    def record_purchase(self, customer_id: str, item_ids: Sequence[str], timestamps: Sequence | None = None) -> bool:
        """Apply a purchase: update the recommender and refresh the customer's candidates. True if applied."""
        if self.cands is None:
            if self.model is not None:
                self.model.update_customer(customer_id, list(item_ids), timestamps)
            return True
        t = self.cands
        idx = [(t.item_pos[i], ts) for i, ts in zip(item_ids, timestamps or [None] * len(item_ids))
               if i in t.item_pos]
        if not idx:
            return False
        new = np.asarray([i for i, _ in idx], dtype=np.int32)
        with self._lock:
            items, scores, sources, bought, _, _ = self._row(customer_id)
            bought = np.union1d(bought, new).astype(np.int32)
            if self.model is not None:
                ids = [t.item_ids_list[i] for i, _ in idx]
                tss = [ts for _, ts in idx] if timestamps is not None else None
                try:
                    self.model.update_customer(customer_id, ids, tss)
                    df = self.model.recommend(customer_id, k=t.n, exclude=None)
                except Exception as exc:  # noqa: BLE001 - the event is stored; keep serving the old list
                    log.warning("model update failed (%s); candidates of this customer not refreshed",
                                type(exc).__name__)
                    self.update_failures += 1
                else:
                    pos = t.item_index.get_indexer(df["item_id"].astype(str))
                    ok = pos >= 0
                    items = pos[ok].astype(np.int32)
                    scores = df["score"].to_numpy(dtype=np.float32)[ok]
                    names = df["source"].astype(str).to_numpy()[ok]
                    for s in pd.unique(names):
                        if s not in t.source_names:
                            t.source_names.append(s)
                    sources = pd.Index(t.source_names).get_indexer(names).astype(np.int8)
            self._live[customer_id] = _Live(items, scores, sources, bought)
        return True

    def replay(self, purchases: Iterable[tuple[str, list[str], list]]) -> int:
        """Apply purchases recorded after the bundle was published (from the event store). Returns the count."""
        n = 0
        for customer_id, items, timestamps in purchases:
            try:
                n += bool(self.record_purchase(customer_id, items, timestamps))
            except PersonalizeError:
                continue
        return n

    # ------------------------------------------------------------------ profile
    def profile(self, customer_id: str) -> dict:
        """Everything the bundle knows about one customer; :class:`UnknownIdError` when nothing."""
        attrs: dict[str, Any] = {}
        if self._cust_row is not None:
            pos = self._cust_row.get_indexer([customer_id])[0]
            if pos >= 0:
                row = self.customers.iloc[pos]
                attrs = {c: _py(row[c]) for c in self.customers.columns if c != "customer_id"}
        in_model = False
        purchased_items = 0
        if self.cands is not None:
            items, _, _, bought, known, _ = self._row(customer_id)
            in_model = customer_id in self.cands.customer_pos or customer_id in self._live
            purchased_items = int(bought.size)
        if not attrs and not in_model:
            raise UnknownIdError(f"unknown customer_id {customer_id!r}")

        def section(fields: dict[str, str]) -> dict | None:
            if not any(col in attrs for col in fields.values()):
                return None
            out = {key: attrs.get(col) for key, col in fields.items()}
            for key in ("R", "F", "M"):
                if isinstance(out.get(key), float):
                    out[key] = int(out[key])
            return out if any(v is not None for v in out.values()) else None

        churn = None
        if attrs.get("churn_risk") is not None:
            churn = {"probability": attrs["churn_risk"], "band": attrs.get("churn_band"),
                     "reasons": self._reasons(attrs.get("churn_reasons"))}
        return {"customer_id": customer_id, "known_to_recommender": in_model, "distinct_items_bought": purchased_items,
                "updated_since_publish": customer_id in self._live,
                "as_of": self.as_of,
                "segment": attrs.get("segment"), "lifecycle": attrs.get("lifecycle"), "tier": attrs.get("tier"),
                "rfm": section(_RFM_FIELDS), "clv": section(_CLV_FIELDS), "churn": churn, "attributes": attrs}

    @staticmethod
    def _reasons(text: Any) -> list[str]:
        from personalize.churn.scoring import split_reasons

        return split_reasons(text)

    # ------------------------------------------------------------------ churn
    def churn_unavailable_reason(self) -> str:
        why = self.churn_info.get("reason")
        return (f"bundle {self.version} has no churn model"
                + (f": {why}" if why else " (it was published without one)"))

    def churn_risk(self, customer_id: str) -> dict:
        """Churn probability, band and top reasons of one customer as of the bundle's data end.

        :class:`MissingComponentError` when the bundle was published without a
        churn model; :class:`UnknownIdError` for a customer it does not know or
        did not score (no purchase before the scoring date).
        """
        if not self.has_churn:
            raise MissingComponentError(self.churn_unavailable_reason())
        pos = self._cust_row.get_indexer([customer_id])[0]
        if pos < 0:
            raise UnknownIdError(f"unknown customer_id {customer_id!r}")
        row = self.customers.iloc[pos]
        p = _py(row["churn_risk"])
        if p is None:
            raise UnknownIdError(f"customer {customer_id!r} has no churn score: no purchase before "
                                 f"{self.churn_info.get('as_of') or 'the scoring date'}")
        band = _py(row["churn_band"]) if "churn_band" in row.index else None
        reasons = self._reasons(row["churn_reasons"]) if "churn_reasons" in row.index else []
        horizon = self.churn_info.get("horizon_days")
        if horizon is None and self.churn_model is not None:
            horizon = getattr(self.churn_model, "horizon_days_", None)
        return {"customer_id": customer_id, "probability": p, "band": band, "reasons": reasons,
                "model_version": self.version, "as_of": self.churn_info.get("as_of"), "horizon_days": horizon}

    # ------------------------------------------------------------------ audiences
    def audience_columns(self) -> list[str]:
        """Score columns an audience export may include (never personal attributes such as age or region)."""
        if self.customers is None:
            return []
        df = self.customers
        out = []
        for c in df.columns:
            if c == "customer_id" or c.startswith("consent_") or c in PERSONAL_COLUMNS:
                continue
            numeric = pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
            if numeric or c in LABEL_COLUMNS:
                out.append(c)
        return out

    def default_audience_fields(self) -> list[str]:
        available = set(self.audience_columns())
        return [c for c in DEFAULT_AUDIENCE_FIELDS if c in available]

    def audience(self, *, consent: str, segments: Sequence[str] | None = None, fields: Sequence[str] | None = None,
                 score: str | None = None, min_score: float | None = None, max_score: float | None = None,
                 lifecycle: Sequence[str] | None = None, tiers: Sequence[str] | None = None,
                 min_clv: float | None = None, min_churn_risk: float | None = None,
                 max_churn_risk: float | None = None,
                 cursor: str | None = None, limit: int = 10_000) -> tuple[pd.DataFrame, str | None]:
        """One page of an audience, ordered by customer_id: (frame[customer_id, fields...], next cursor or None).

        Only customers whose ``consent_<consent>`` flag is true are included
        (missing flag or missing column = no consent). The segment, lifecycle,
        tier, CLV and churn-risk filters are those of
        :func:`personalize.churn.audience.audience_mask`; a churn filter on a
        bundle without churn raises :class:`MissingComponentError`.
        ``cursor`` is the last customer_id of the previous page.
        """
        if consent not in CONSENT_CHANNELS:
            raise PersonalizeError(f"consent must be one of {', '.join(CONSENT_CHANNELS)}, got {consent!r}")
        if limit < 1:
            raise PersonalizeError(f"limit must be at least 1, got {limit}")
        df = self.customers
        available = self.audience_columns()
        fields = list(fields) if fields else self.default_audience_fields()
        bad = [f for f in fields if f not in available]
        if bad:
            raise PersonalizeError(f"unknown audience field(s) {bad}; available: {available}")
        if df is None:
            return pd.DataFrame({"customer_id": pd.Series([], dtype=str), **{f: [] for f in fields}}), None
        if (min_churn_risk is not None or max_churn_risk is not None) and not self.has_churn:
            raise MissingComponentError(self.churn_unavailable_reason() + "; cannot filter by churn risk")
        mask = audience_mask(df, consent=consent, segments=segments, lifecycle=lifecycle, tiers=tiers,
                             min_clv=min_clv, min_churn_risk=min_churn_risk, max_churn_risk=max_churn_risk)
        if score is not None or min_score is not None or max_score is not None:
            if score is None:
                raise DataError("min_score/max_score need score=<column>", column="score")
            if score not in available or score not in df or not pd.api.types.is_numeric_dtype(df[score]):
                raise PersonalizeError(f"unknown numeric score {score!r}; available: "
                                       f"{[c for c in available if pd.api.types.is_numeric_dtype(df[c])]}")
            vals = df[score].to_numpy(dtype=np.float64)
            if min_score is not None:
                mask &= vals >= min_score
            if max_score is not None:
                mask &= vals <= max_score
        if cursor is not None:
            start = int(np.searchsorted(df["customer_id"].to_numpy(dtype=str), cursor, side="right"))
            mask[:start] = False
        pos = np.flatnonzero(mask)
        page = pos[:limit]
        more = pos.size > limit
        out = df.iloc[page][["customer_id", *fields]].reset_index(drop=True)
        next_cursor = str(out["customer_id"].iloc[-1]) if more and len(out) else None
        return out, next_cursor

    # ------------------------------------------------------------------ info
    def info(self) -> dict:
        return {"version": self.version, "manifest": self.manifest, "live_customers": len(self._live)}
