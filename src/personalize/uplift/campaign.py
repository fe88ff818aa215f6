"""Uplift training sets from campaign exposures: what each customer was sent, what was known about her before, what
happened.

:func:`campaign_training_set` turns campaign data into the three inputs of every uplift learner,
one row per exposure:

* ``X`` -- the customer's features **as of the exposure, strictly before it**;
* ``treatment`` -- the arm: the offer id, or ``control_name`` for an exposure without an offer
  (the control group);
* ``y`` -- the outcome: ``converted`` (0/1) or ``revenue``.

Where the features come from:

* a :class:`~personalize.data.CampaignData` (``load_hillstrom``, ``load_exposures(features=...)``,
  ``CampaignData.from_dataset``): its pre-period features table, aligned with the exposure rows
  (:meth:`~personalize.data.CampaignData.features_for_exposures`). The table is the loader's
  promise that the columns were measured before the campaign (Hillstrom's file: recency,
  history, ... of the year before the e-mails); a customer without a row gets NaN features.
* a :class:`~personalize.data.Dataset` with an exposures table: the churn features
  (:func:`personalize.churn.snapshot`: recency, frequency, spend, purchase rhythm, recent
  windows, spend trend) and, with ``profiles=True``, the profile columns
  (:func:`personalize.analytics.profiles`: order value, discount share and rate, return rate,
  one spend share per catalog category, channel mix, age) computed from the transactions
  **strictly before a cutoff**. Exposures are
  grouped by campaign and calendar day; each group's cutoff is its earliest exposure, so
  every row's features use only data from before its own exposure (a purchase between the
  day's first send and a later send is left out, never let in). Returns made after the
  cutoff are not netted yet (the Dataset's point-in-time slice), so nothing after the
  exposure changes a feature -- ``tests/test_uplift_campaign.py`` rewrites every
  transaction from the exposure on and checks the features do not move.
  A customer with no purchase before the cutoff gets NaN features. The share columns are the
  union over the cutoffs (category shares: one per catalog category); a share absent at a
  cutoff -- a channel first used later -- is 0 there for customers with history.

Cost: one snapshot per (campaign, day) group -- a campaign sent over many days costs one
feature pass per day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from personalize import _sets
from personalize.analytics.profiles import profiles as customer_profiles
from personalize.churn import DEFAULT_WINDOWS, snapshot
from personalize.data import CampaignData, Dataset
from personalize.errors import DataError

__all__ = ["CampaignTrainingSet", "campaign_training_set", "TARGETS"]

#: outcome columns of the exposures table that can be the target
TARGETS = ("converted", "revenue")


@dataclass
class CampaignTrainingSet:
    """One row per exposure: features ``X``, arm ``treatment``, outcome ``y`` (and both outcomes).

    ``treatment`` holds offer ids and ``control_name`` (the arm of exposures without an offer);
    ``outcomes`` has the exposures' ``converted`` (0/1) and ``revenue`` columns that exist;
    ``feature_cutoff`` is the moment the features are computed as of (NaT when they come from a
    features table). ``meta``: where the features came from and how many rows have none.
    """

    X: pd.DataFrame
    treatment: np.ndarray
    y: np.ndarray
    target: str
    outcomes: pd.DataFrame
    customer_id: np.ndarray
    exposed_at: np.ndarray
    campaign_id: np.ndarray | None
    feature_cutoff: np.ndarray
    control_name: str
    randomized: bool | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.X)

    @property
    def treatment_names(self) -> list[str]:
        """Treatment arms (offer ids) present, sorted."""
        return sorted({str(a) for a in self.treatment if a != self.control_name})

    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.X.columns]

    def subset(self, rows: np.ndarray) -> "CampaignTrainingSet":
        """The same set on ``rows`` (positions or a boolean mask)."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows)
        return CampaignTrainingSet(
            self.X.iloc[rows].reset_index(drop=True), self.treatment[rows], self.y[rows], self.target,
            self.outcomes.iloc[rows].reset_index(drop=True), self.customer_id[rows], self.exposed_at[rows],
            None if self.campaign_id is None else self.campaign_id[rows], self.feature_cutoff[rows],
            self.control_name, self.randomized, dict(self.meta))

    def summary(self) -> dict:
        """Rows, arms with their row counts and mean outcome, features, target."""
        arms = {}
        for arm in [self.control_name, *self.treatment_names]:
            m = self.treatment == arm
            arms[str(arm)] = {"rows": int(m.sum()), f"mean_{self.target}": float(self.y[m].mean()) if m.any()
                              else None}
        return {"rows": len(self), "target": self.target, "control": self.control_name, "arms": arms,
                "features": self.feature_names, "randomized": self.randomized, **self.meta}


def campaign_training_set(data: CampaignData | Dataset, *, campaign_id: str | None = None,
                          treatments: Sequence[str] | None = None, target: str = "converted",
                          features: Sequence[str] | None = None, profiles: bool = True, bgnbd: bool = False,
                          windows: tuple[int, ...] = DEFAULT_WINDOWS,
                          control_name: str | None = None) -> CampaignTrainingSet:
    """The uplift training set of a campaign's exposures (see the module docstring).

    ``data``: :class:`~personalize.data.CampaignData` (features from its features table) or a
    :class:`~personalize.data.Dataset` with exposures (point-in-time churn / profile features).
    ``campaign_id``: keep one campaign (default: every exposure). ``treatments``: keep these
    offer ids and the control (default: every arm) -- e.g. ``["Womens E-Mail"]`` for a
    one-treatment problem. ``target``: ``"converted"`` or ``"revenue"``. ``features``: the
    feature columns to keep (default: all). Dataset only: ``profiles`` adds the customer-profile
    columns, ``bgnbd`` the BG/NBD columns (one model fit per cutoff), ``windows`` the recent
    windows in days. ``control_name``: the control arm's label (default: the CampaignData's,
    ``"control"`` for a Dataset).

    Raises :class:`~personalize.errors.DataError` naming the table and column: no exposures,
    an unknown campaign or treatment, no control rows, a target column missing or with gaps,
    a feature column that does not exist, no features at all.
    """
    if target not in TARGETS:
        raise DataError(f"target must be one of {list(TARGETS)}, got {target!r}", table="exposures")
    if isinstance(data, CampaignData):
        camp = data.campaign(campaign_id) if campaign_id is not None else data
        exp = camp.exposures
        control = camp.control_name if control_name is None else str(control_name)
        if camp.features is None:
            raise DataError("this campaign data has no customer features; load a features file "
                            "(load_exposures(features=...)) or pass the Dataset with the purchase history",
                            table="features")
        X = camp.features_for_exposures()
        cutoff = np.full(len(exp), np.datetime64("NaT"), dtype="datetime64[ns]")
        source = "features table"
    elif isinstance(data, Dataset):
        exp = _dataset_exposures(data, campaign_id)
        control = "control" if control_name is None else str(control_name)
        X, cutoff = _point_in_time_features(data, exp, profiles=profiles, bgnbd=bgnbd, windows=windows)
        source = "purchase history before each exposure (campaign, day)"
    else:
        raise DataError(f"expected CampaignData or a Dataset with exposures, got {type(data).__name__}")
    offer = exp["offer_id"]
    if control in set(offer.dropna().astype(str)):
        raise DataError(f"control_name {control!r} is also an offer id", table="exposures", column="offer_id")
    arm = offer.astype(object).where(offer.notna(), control).astype(str).to_numpy(dtype=object)
    keep = np.ones(len(exp), dtype=bool)
    if treatments is not None:
        wanted = [str(t) for t in treatments]
        known = sorted(set(arm) - {control})
        unknown = [t for t in wanted if t not in known and t != control]
        if unknown:
            raise DataError(f"unknown treatment(s) {unknown}; the exposures' offer ids are {known[:10]}",
                            table="exposures", column="offer_id")
        if not [t for t in wanted if t != control]:
            raise DataError("treatments lists no treatment arm (only the control)", table="exposures",
                            column="offer_id")
        keep = _sets.isin(arm, [control, *wanted])
    if not (arm[keep] == control).any():
        raise DataError("no control exposures (rows without an offer id): uplift needs a control group",
                        table="exposures", column="offer_id")
    if not (arm[keep] != control).any():
        raise DataError("no treated exposures (rows with an offer id)", table="exposures", column="offer_id")
    if target not in exp.columns:
        raise DataError(f"the exposures have no {target!r} column (the outcome to model)", table="exposures",
                        column=target)
    outcomes = pd.DataFrame({c: _outcome(exp, c) for c in TARGETS if c in exp.columns})
    y = outcomes[target].to_numpy(dtype=np.float64)
    bad = keep & ~np.isfinite(y)
    if bad.any():
        raise DataError(f"{int(bad.sum())} exposures have no {target} value", table="exposures", column=target,
                        rows=np.flatnonzero(bad)[:5].tolist())
    if features is not None:
        cols = [str(c) for c in features]
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise DataError(f"no feature column(s) {missing}; features: {list(X.columns)[:20]}", table="features",
                            column=missing[0])
        X = X[cols]
    if X.shape[1] == 0:
        raise DataError("no feature columns", table="features")
    rows = np.flatnonzero(keep)
    X = X.iloc[rows].reset_index(drop=True)
    no_features = int(X.isna().all(axis=1).sum())
    randomized = bool(exp["randomized"].to_numpy()[rows].all()) if "randomized" in exp.columns else None
    meta = {"feature_source": source, "rows_without_features": no_features,
            "campaigns": sorted(exp["campaign_id"].iloc[rows].unique().tolist())
            if "campaign_id" in exp.columns else None}
    return CampaignTrainingSet(
        X=X, treatment=arm[rows], y=y[rows], target=target, outcomes=outcomes.iloc[rows].reset_index(drop=True),
        customer_id=exp["customer_id"].to_numpy(dtype=object)[rows],
        exposed_at=exp["exposed_at"].to_numpy(dtype="datetime64[ns]")[rows],
        campaign_id=exp["campaign_id"].to_numpy(dtype=object)[rows] if "campaign_id" in exp.columns else None,
        feature_cutoff=cutoff[rows], control_name=control, randomized=randomized, meta=meta)


def _outcome(exp: pd.DataFrame, col: str) -> pd.Series:
    s = exp[col]
    if pd.api.types.is_bool_dtype(s.dtype) or s.dtype == object:
        return s.astype("float64") if not s.isna().any() else s.map(lambda v: np.nan if pd.isna(v) else float(v))
    return pd.to_numeric(s, errors="coerce").astype("float64")


def _dataset_exposures(ds: Dataset, campaign_id: str | None) -> pd.DataFrame:
    exp = ds.exposures
    if exp is None or len(exp) == 0:
        raise DataError("the dataset has no exposures table", table="exposures")
    if campaign_id is not None:
        if "campaign_id" not in exp.columns:
            raise DataError("the exposures have no campaign_id column", table="exposures", column="campaign_id")
        exp = exp[(exp["campaign_id"] == str(campaign_id)).to_numpy()]
        if not len(exp):
            known = sorted(ds.exposures["campaign_id"].dropna().unique().tolist())
            raise DataError(f"no exposures of campaign {campaign_id!r}; campaigns: {known[:10]}",
                            table="exposures", column="campaign_id")
    if "offer_id" not in exp.columns:
        exp = exp.assign(offer_id=pd.Series([None] * len(exp), index=exp.index, dtype="str"))
    return exp.reset_index(drop=True)


#: profile columns that repeat a churn feature under another name (left out)
_PROFILE_DUPLICATES = frozenset({"recency_days", "tenure_days", "orders", "lines", "purchase_days", "monetary",
                                 "ipt_mean_days", "ipt_std_days", "spend_recent", "spend_previous"})
_SHARE_PREFIXES = ("share_cat__", "share_channel__")


def _profile_columns(sliced: Dataset, cut: pd.Timestamp, ids: np.ndarray, categories: list[str] | None
                     ) -> pd.DataFrame:
    """Numeric profile columns (``profile_`` prefix) of ``ids`` as of ``cut``.

    Category shares: one column per catalog category (``categories``), not the profile's top five
    of the moment, so a column means the same at every cutoff and the set of columns does not
    depend on later sales; a share that is absent at this cutoff is 0 for a customer with history.
    """
    prof = customer_profiles(sliced, cut, top_categories=len(categories) if categories else 5)
    keep = [c for c in prof.columns if c not in _PROFILE_DUPLICATES and pd.api.types.is_numeric_dtype(prof[c])
            and not pd.api.types.is_bool_dtype(prof[c])]
    out = prof[keep].astype(np.float64)
    if categories:
        want = [f"share_cat__{c}" for c in categories]
        out = out.reindex(columns=[c for c in keep if not c.startswith("share_cat__")] + want +
                          [c for c in keep if c == "share_cat__other"])
        out[want] = out[want].fillna(0.0)
    out.columns = [f"profile_{c}" for c in out.columns]
    return out.reindex(pd.Index(ids, name="customer_id"))


def _point_in_time_features(ds: Dataset, exp: pd.DataFrame, *, profiles: bool, bgnbd: bool,
                            windows: tuple[int, ...]) -> tuple[pd.DataFrame, np.ndarray]:
    """Features of each exposure's customer as of its group's earliest exposure (see module docstring)."""
    at = exp["exposed_at"]
    day = at.dt.normalize()
    camp = exp["campaign_id"].fillna("") if "campaign_id" in exp.columns else pd.Series("", index=exp.index)
    cutoff = at.groupby([camp, day], sort=False).transform("min").to_numpy(dtype="datetime64[ns]")
    first_tx = ds.first_timestamp
    categories = None
    if profiles and ds.items is not None and "category" in ds.items.columns:
        categories = sorted(ds.items["category"].dropna().astype(str).unique().tolist())
    parts: list[pd.DataFrame] = []
    for cut in _sets.unique(cutoff):
        rows = np.flatnonzero(cutoff == cut)
        cut_ts = pd.Timestamp(cut)
        ids = exp["customer_id"].to_numpy(dtype=object)[rows]
        if first_tx is None or first_tx >= cut_ts:
            part = pd.DataFrame(index=pd.RangeIndex(len(rows)))  # nobody has a purchase before this cutoff
        else:
            # the slice as known at the cutoff (later returns not netted yet) rather than the full data:
            # analytics.profiles maps category codes by row position of the data it is given, which
            # misaligns on the full data when a purchase before the cutoff was returned in full after it
            sliced = ds.until(cut_ts)
            snap = snapshot(sliced, cut_ts, with_labels=False, profiles=False, bgnbd=bgnbd, windows=windows)
            f = snap.X.set_axis(pd.Index(snap.customer_id, name="customer_id")).reindex(
                pd.Index(ids, name="customer_id"))
            if profiles:
                f = pd.concat([f, _profile_columns(sliced, cut_ts, ids, categories)], axis=1)
            part = f.reset_index(drop=True)
        part.index = rows
        parts.append(part)
    X = pd.concat(parts, axis=0, sort=False).sort_index()
    if X.shape[1] == 0:
        raise DataError("no customer has a purchase before any exposure: no features to learn from",
                        table="transactions", column="timestamp")
    X = X.reset_index(drop=True).astype(np.float64)
    # a share column missing at one cutoff (a channel not used yet) is 0 for customers with history there
    has_history = X["purchases"].notna().to_numpy() if "purchases" in X.columns else np.zeros(len(X), bool)
    for c in X.columns:
        if c.startswith(tuple(f"profile_{p}" for p in _SHARE_PREFIXES)):
            X.loc[has_history & X[c].isna().to_numpy(), c] = 0.0
    return X, cutoff
