"""Acceptance propensity: P(a customer converts after being shown an offer | customer, offer, time).

:func:`acceptance_training_set` turns past exposures into rows: the pair
features of :mod:`personalize.offers.features` computed as of the day of
each exposure (nothing after it), labelled with ``converted``.
:class:`AcceptanceModel` is the calibrated LightGBM propensity model (it
passes the same contract as the churn model) plus one rule: an offer with
fewer than ``min_exposures`` training exposures gets no learned estimate of
its own but ``base rate of its kind x the customer's affinity`` (and says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize import _sets
from personalize.churn.model import PropensityModel
from personalize.errors import DataError, NotFittedError
from personalize.offers.catalog import OfferCatalog
from personalize.offers.features import DayFeatures, Economics, pair_features

if TYPE_CHECKING:
    from personalize.data import Dataset

__all__ = ["AcceptanceModel", "AcceptanceSet", "acceptance_training_set", "score_pairs"]


@dataclass
class AcceptanceSet:
    """Exposure rows: features, label, the cutoff (exposure day), customer and offer of each."""

    X: pd.DataFrame
    y: np.ndarray
    cutoff: np.ndarray
    customer_id: np.ndarray
    offer: np.ndarray          # offer index into the catalog
    exposed_at: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def acceptance_training_set(ds: Dataset, catalog: OfferCatalog, *, exposures: pd.DataFrame | None = None,
                            end: pd.Timestamp | None = None, features: DayFeatures | None = None) -> AcceptanceSet:
    """One row per exposure to an offer (controls excluded), features as of the exposure's day.

    ``exposures`` defaults to the Dataset's; ``end`` keeps only exposures before it (a time split);
    ``features`` shares each day's customer features with other training sets (:class:`DayFeatures`).
    """
    features = features if features is not None else DayFeatures(ds, catalog)
    exp = ds.exposures if exposures is None else exposures
    if exp is None or not len(exp):
        raise DataError("no exposures to learn acceptance from", table="exposures")
    if "converted" not in exp.columns:
        raise DataError("exposures need a 'converted' column to learn acceptance", table="exposures",
                        column="converted")
    exp = exp[exp["offer_id"].notna()]
    if end is not None:
        exp = exp[exp["exposed_at"] < pd.Timestamp(end)]
    offer = pd.Series(exp["offer_id"].astype(str).map(catalog.index))
    unknown = offer.isna().to_numpy()
    if unknown.any():
        raise DataError(f"exposures to offers missing from the catalog: "
                        f"{exp['offer_id'][unknown].astype(str).unique()[:5].tolist()}", table="exposures",
                        column="offer_id")
    exp = exp.assign(_offer=offer.to_numpy(dtype=np.int64), _day=exp["exposed_at"].dt.normalize())
    parts = []
    for day, g in exp.groupby("_day", sort=True):
        ids = g["customer_id"].astype(str).to_numpy(dtype=object)
        econ, cust = features.get(day, ids)
        X = pair_features(catalog, cust, econ, econ.rows(ids), g["_offer"].to_numpy())
        parts.append((X, g))
    if not parts:
        raise DataError("no exposures before the end given", table="exposures")
    X = pd.concat([p[0] for p in parts], ignore_index=True)
    g = pd.concat([p[1] for p in parts], ignore_index=True)
    return AcceptanceSet(X=X, y=g["converted"].fillna(False).astype(bool).to_numpy(np.int8),
                         cutoff=g["_day"].to_numpy(dtype="datetime64[ns]"),
                         customer_id=g["customer_id"].astype(str).to_numpy(dtype=object),
                         offer=g["_offer"].to_numpy(np.int64), exposed_at=g["exposed_at"].to_numpy())


def validation_periods(days: np.ndarray, fraction: float) -> np.ndarray:
    """Exposure days with the latest whole days holding at least ``fraction`` of the rows merged into one
    (the validation period: the model is validated on what came after everything it learned from)."""
    days = np.asarray(days, dtype="datetime64[ns]")
    if not len(days):
        return days
    ordered = np.sort(days)
    split = ordered[min(len(ordered) - 1, int(np.floor((1.0 - float(fraction)) * len(ordered))))]
    out = days.copy()
    out[days >= split] = ordered[-1]
    return out


class AcceptanceModel(PropensityModel):
    """Calibrated P(accept | customer, offer); sparse offers fall back to their kind's rate x affinity.

    ``min_exposures``: offers with fewer training exposures use the fallback.
    Other hyperparameters as :class:`~personalize.churn.PropensityModel`.
    Fitted (besides the base's): ``offer_ids_``, ``offer_exposures_``,
    ``fallback_offers_`` (ids), ``kind_rates_`` (kind -> conversion rate),
    ``mean_affinity_``.
    """

    kind = "acceptance"
    bundle_kind = "acceptance"

    def __init__(self, *, min_exposures: int = 100, learning_rate: float = 0.03, n_estimators: int = 2000,
                 num_leaves: int = 15, max_depth: int = 4, min_child_samples: int = 50, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, reg_lambda: float = 5.0, max_bin: int = 255,
                 early_stopping_rounds: int = 200, validation_fraction: float = 0.2, calibration: str = "auto",
                 bands=None, monotone=None, refit: bool | str = "auto", n_jobs: int | None = None,
                 random_state: int = 0, verbose: bool = False) -> None:
        super().__init__(learning_rate=learning_rate, n_estimators=n_estimators, num_leaves=num_leaves,
                         max_depth=max_depth, min_child_samples=min_child_samples, subsample=subsample,
                         colsample_bytree=colsample_bytree, reg_lambda=reg_lambda, max_bin=max_bin,
                         early_stopping_rounds=early_stopping_rounds, validation_fraction=validation_fraction,
                         calibration=calibration, bands=bands, monotone=monotone, refit=refit, n_jobs=n_jobs,
                         random_state=random_state, verbose=verbose)
        self.min_exposures = min_exposures

    def fit_exposures(self, data: AcceptanceSet, catalog: OfferCatalog) -> "AcceptanceModel":
        """Fit on :func:`acceptance_training_set` rows (validation on the latest exposure day)."""
        if isinstance(self.min_exposures, bool) or not isinstance(self.min_exposures, (int, np.integer)) \
                or self.min_exposures < 0:
            raise DataError(f"min_exposures must be an integer >= 0, got {self.min_exposures!r}")
        counts = np.bincount(data.offer, minlength=len(catalog))
        self.offer_ids_ = [str(o) for o in catalog.offer_ids]
        self.offer_exposures_ = [int(c) for c in counts]
        self.fallback_offers_ = [o for o, c in zip(self.offer_ids_, counts) if c < self.min_exposures]
        kinds = catalog.kinds[data.offer]
        overall = float(data.y.mean())
        self.kind_rates_ = {str(k): float(data.y[kinds == k].mean()) if (kinds == k).any() else overall
                            for k in sorted(set(catalog.kinds))}
        aff = data.X["affinity_share"].to_numpy(np.float64)
        self.mean_affinity_ = float(np.nanmean(aff)) if np.isfinite(aff).any() else 1.0
        keep = counts[data.offer] >= self.min_exposures
        if keep.sum() < 50 or len(_sets.unique(data.y[keep])) < 2:
            raise DataError(f"too few exposures to learn acceptance: {int(keep.sum())} rows on offers with at "
                            f"least {self.min_exposures} exposures (need 50 rows with both outcomes)",
                            table="exposures")
        self.fit(data.X[keep].reset_index(drop=True), data.y[keep],
                 cutoff=validation_periods(data.cutoff[keep], self.validation_fraction),
                 customer_id=data.customer_id[keep])
        return self

    def predict_pairs(self, X: pd.DataFrame, offers: np.ndarray, catalog: OfferCatalog) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
        """(P(accept), used the fallback) per pair; the fallback for offers with too few exposures."""
        p = self.predict_probability(X)
        if not hasattr(self, "offer_ids_"):
            raise NotFittedError("this AcceptanceModel was fitted on a plain feature matrix: fit it with "
                                 "fit_exposures to score offers")
        fb_ids = set(self.fallback_offers_)
        fb = np.array([oid in fb_ids for oid in catalog.offer_ids], dtype=bool)[np.asarray(offers, np.int64)]
        if fb.any():
            rate = np.array([self.kind_rates_.get(str(catalog.kinds[o]), np.mean(list(self.kind_rates_.values())))
                             for o in offers[fb]])
            aff = X["affinity_share"].to_numpy(np.float64)[fb]
            mult = np.where(np.isfinite(aff), np.clip((aff + 0.01) / (self.mean_affinity_ + 0.01), 0.25, 4.0), 1.0)
            p[fb] = np.clip(rate * mult, 0.0, 1.0)
        return p, fb

    def _meta(self) -> dict:
        if not hasattr(self, "offer_ids_"):  # fitted on a plain feature matrix
            return super()._meta()
        return {**super()._meta(), "offers": {"ids": self.offer_ids_, "exposures": self.offer_exposures_,
                                              "fallback": self.fallback_offers_, "kind_rates": self.kind_rates_,
                                              "mean_affinity": self.mean_affinity_}}

    @classmethod
    def _from_meta(cls, meta, d):
        m = super()._from_meta(meta, d)
        if "offers" not in meta:
            return m
        o = meta["offers"]
        m.offer_ids_, m.offer_exposures_, m.fallback_offers_ = list(o["ids"]), list(o["exposures"]), \
            list(o["fallback"])
        m.kind_rates_, m.mean_affinity_ = dict(o["kind_rates"]), float(o["mean_affinity"])
        return m


def score_pairs(model: AcceptanceModel, catalog: OfferCatalog, customer: pd.DataFrame, econ: Economics,
                rows: np.ndarray, offers: np.ndarray) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """P(accept), fallback flags and the feature frame of pairs (``rows`` into ``econ``, ``offers``)."""
    X = pair_features(catalog, customer, econ, rows, offers)
    p, fb = model.predict_pairs(X, np.asarray(offers, np.int64), catalog)
    return p, fb, X
