"""Campaign data: validated exposures of one or more campaigns, for readouts and uplift models.

A :class:`CampaignData` holds

* ``exposures``: the exposures table of the data contract (see
  :data:`personalize.data.schema.EXPOSURES`), cast by
  :func:`personalize.data.validate.prepare_table`: ``customer_id``,
  ``exposed_at``, ``offer_id`` (empty = control), ``campaign_id``,
  ``randomized``, ``converted``, ``revenue``;
* ``offers`` (optional): the offers table of the data contract;
* ``features`` (optional): pre-period covariates, one row per customer,
  indexed by ``customer_id``. When the data holds several campaigns whose
  pre-periods differ (:meth:`CampaignData.from_dataset`), the index is
  ``(campaign_id, customer_id)``; :meth:`CampaignData.campaign` returns one
  campaign with a plain ``customer_id`` index, and
  :meth:`CampaignData.features_for_exposures` aligns the features with the
  exposure rows in either case.

Arms are offer ids; the control arm is the exposures without an offer id and
is shown under ``control_name``. ``planned_split`` (arm -> weight) is the
design's intended allocation, used by the sample-ratio check of a readout.

Constructors: ``CampaignData(exposures_df, ...)`` for DataFrames,
:meth:`CampaignData.from_dataset` for a :class:`~personalize.data.Dataset`'s
exposures (features computed point in time, strictly before each campaign's
first exposure), and the file loaders
:func:`personalize.data.adapters.load_hillstrom` and
:func:`personalize.data.adapters.load_exposures`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import pandas as pd

from personalize.data.dataset import Dataset
from personalize.data.validate import cast_ids, prepare_table
from personalize.errors import DataError

__all__ = ["CampaignData", "FEATURE_COLUMNS"]

FEATURE_COLUMNS = ("pre_spend", "pre_spend_90d", "pre_orders", "days_since_last_purchase")
"""Columns of the features that :meth:`CampaignData.from_dataset` computes."""


def _check_split(split: Mapping[str, float] | None) -> dict[str, float] | None:
    if split is None:
        return None
    if not isinstance(split, Mapping) or not split:
        raise DataError("planned_split must be a non-empty mapping arm -> weight, e.g. {'control': 1, 'A': 1}")
    out = {}
    for arm, w in split.items():
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise DataError(f"planned_split[{arm!r}] must be a number, got {w!r}") from None
        if not np.isfinite(w) or w <= 0:
            raise DataError(f"planned_split[{arm!r}] must be a positive number, got {w!r}")
        out[str(arm)] = w
    total = sum(out.values())
    return {k: v / total for k, v in out.items()}


def _features_frame(features: pd.DataFrame | None) -> pd.DataFrame | None:
    if features is None:
        return None
    if not isinstance(features, pd.DataFrame):
        raise DataError(f"features must be a pandas DataFrame indexed by customer_id, got {type(features).__name__}",
                        table="features")
    f = features
    if "customer_id" in f.columns:
        f = f.set_index("customer_id")
    if isinstance(f.index, pd.MultiIndex):
        if list(f.index.names) != ["campaign_id", "customer_id"]:
            raise DataError(f"a features MultiIndex must be (campaign_id, customer_id), got {list(f.index.names)}",
                            table="features")
        idx = pd.MultiIndex.from_arrays(
            [cast_ids(pd.Series(f.index.get_level_values(i)), "features", n) for i, n in
             enumerate(("campaign_id", "customer_id"))], names=["campaign_id", "customer_id"])
        bad = np.asarray(pd.isna(idx.get_level_values(1)))
    else:
        idx = pd.Index(cast_ids(pd.Series(f.index), "features", "customer_id"), name="customer_id")
        bad = np.asarray(pd.isna(idx))
    if bad.any():
        raise DataError("empty customer ids", table="features", column="customer_id",
                        rows=np.flatnonzero(bad)[:5].tolist())
    dup = idx.duplicated()
    if dup.any():
        raise DataError(f"duplicate customer ids ({list(idx[dup][:3])}): one row per customer", table="features",
                        column="customer_id", rows=np.flatnonzero(dup)[:5].tolist())
    out = f.copy()
    out.index = idx
    return out


class CampaignData:
    """Exposures (one row per customer and campaign exposure), optional offers and pre-period features.

    ``CampaignData(exposures, *, offers=None, features=None, mapping=None,
    offer_mapping=None, planned_split=None, control_name="control",
    outcome_name="conversions", time_format=None)``: ``mapping`` /
    ``offer_mapping`` map canonical field -> your column name, like every
    table of the data contract. ``outcome_name`` is the plural noun the
    readout uses for ``converted`` ("visits", "orders").

    Attributes: ``exposures``, ``offers``, ``features``, ``planned_split``
    (normalised to sum 1, or None), ``control_name``, ``outcome_name``.
    Properties: ``treatment_names``, ``control_mask``, ``arms``,
    ``campaign_ids``, ``randomized``.
    """

    def __init__(self, exposures: pd.DataFrame, *, offers: pd.DataFrame | None = None,
                 features: pd.DataFrame | None = None, mapping: Mapping[str, str] | None = None,
                 offer_mapping: Mapping[str, str] | None = None, planned_split: Mapping[str, float] | None = None,
                 control_name: str = "control", outcome_name: str = "conversions",
                 time_format: str | None = None) -> None:
        if exposures is None:
            raise DataError("exposures are required", table="exposures")
        exp = prepare_table(exposures, "exposures", mapping, time_format=time_format)
        if len(exp) == 0:
            raise DataError("no exposures (the table has no rows)", table="exposures")
        if "campaign_id" in exp.columns:
            miss = exp["campaign_id"].isna().to_numpy()
            if miss.any() and not miss.all():
                raise DataError(f"campaign_id is missing in {int(miss.sum())} of {len(exp)} rows; give every row "
                                "a campaign or none", table="exposures", column="campaign_id",
                                rows=np.flatnonzero(miss)[:5].tolist())
            if miss.all():
                exp = exp.drop(columns="campaign_id")
        if "offer_id" not in exp.columns:
            exp["offer_id"] = pd.Series([None] * len(exp), dtype="str")
        off = prepare_table(offers, "offers", offer_mapping)
        if off is not None:
            known = exp["offer_id"].isna() | exp["offer_id"].isin(off["offer_id"])
            if not known.all():
                bad = ~known.to_numpy()
                raise DataError(f"offer ids not in the offers table ({exp['offer_id'][bad].unique()[:3].tolist()})",
                                table="exposures", column="offer_id", rows=np.flatnonzero(bad)[:5].tolist())
        if not isinstance(control_name, str) or not control_name:
            raise DataError("control_name must be a non-empty string")
        if control_name in set(exp["offer_id"].dropna().unique()):
            raise DataError(f"control_name {control_name!r} is also an offer id; the control arm is the exposures "
                            "with an empty offer_id", table="exposures", column="offer_id")
        self.exposures: pd.DataFrame = exp
        self.offers: pd.DataFrame | None = off
        self.features: pd.DataFrame | None = _features_frame(features)
        self.planned_split: dict[str, float] | None = _check_split(planned_split)
        self.control_name = control_name
        self.outcome_name = str(outcome_name)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dataset(cls, ds: Dataset, *, campaign_id: str | None = None,
                     planned_split: Mapping[str, float] | None = None, control_name: str = "control",
                     outcome_name: str = "conversions", exposures: pd.DataFrame | None = None) -> CampaignData:
        """A Dataset's exposures (or ``exposures``, rows of them) and offers, with point-in-time pre-period
        features.

        For each campaign the features are computed from the transactions
        strictly before that campaign's first exposure (``ds.until(first)``,
        which also undoes returns made at or after it): ``pre_spend`` (all
        spend before), ``pre_spend_90d`` (the 90 days before), ``pre_orders``
        (orders, or distinct purchase times without order ids) and
        ``days_since_last_purchase`` (missing when the customer never bought
        before). ``campaign_id`` keeps one campaign.
        """
        if not isinstance(ds, Dataset):
            raise DataError(f"expected a Dataset, got {type(ds).__name__}")
        exp = ds.exposures if exposures is None else exposures
        if exp is None or len(exp) == 0:
            raise DataError("the dataset has no exposures table", table="exposures")
        if campaign_id is not None:
            if "campaign_id" not in exp.columns:
                raise DataError("the exposures have no campaign_id column", table="exposures", column="campaign_id")
            exp = exp[(exp["campaign_id"] == str(campaign_id)).to_numpy()].reset_index(drop=True)
            if not len(exp):
                known = sorted(ds.exposures["campaign_id"].dropna().unique().tolist())
                raise DataError(f"no exposures of campaign {campaign_id!r}; campaigns: {known[:10]}",
                                table="exposures", column="campaign_id")
        per_campaign = "campaign_id" in exp.columns and exp["campaign_id"].notna().all() \
            and exp["campaign_id"].nunique() > 1
        parts = []
        groups = exp.groupby("campaign_id", sort=True) if per_campaign else [(None, exp)]
        for cid, rows in groups:
            f = _pre_period_features(ds, rows["customer_id"], rows["exposed_at"].min())
            if per_campaign:
                f.index = pd.MultiIndex.from_arrays([pd.Index([cid] * len(f), dtype="str"), f.index],
                                                    names=["campaign_id", "customer_id"])
            parts.append(f)
        features = pd.concat(parts) if len(parts) > 1 else parts[0]
        return cls(exp, offers=ds.offers, features=features, planned_split=planned_split,
                   control_name=control_name, outcome_name=outcome_name)

    # ------------------------------------------------------------------ views
    @property
    def control_mask(self) -> np.ndarray:
        """Boolean array aligned with ``exposures``: True for control rows (no offer id)."""
        return self.exposures["offer_id"].isna().to_numpy()

    @property
    def treatment_names(self) -> list[str]:
        """The treatment arms (offer ids), sorted."""
        return sorted(self.exposures["offer_id"].dropna().unique().tolist())

    @property
    def arms(self) -> pd.Series:
        """Arm label of every exposure row: the offer id, or ``control_name`` for control rows."""
        return self.exposures["offer_id"].fillna(self.control_name).astype("str").rename("arm")

    @property
    def campaign_ids(self) -> list[str | None]:
        """Distinct campaign ids (sorted); ``[None]`` when the exposures have no campaign_id."""
        if "campaign_id" not in self.exposures.columns:
            return [None]
        return sorted(self.exposures["campaign_id"].unique().tolist())

    @property
    def randomized(self) -> bool | None:
        """True when every exposure is flagged randomized, False when any is not, None when unknown."""
        if "randomized" not in self.exposures.columns:
            return None
        return bool(self.exposures["randomized"].all())

    def campaign(self, campaign_id: str | None) -> CampaignData:
        """One campaign (its exposures, and its features with a plain customer_id index)."""
        ids = self.campaign_ids
        if campaign_id is None:
            if len(ids) > 1:
                raise DataError(f"the exposures hold {len(ids)} campaigns ({', '.join(map(str, ids[:6]))}"
                                f"{', ...' if len(ids) > 6 else ''}); pick one campaign_id", table="exposures",
                                column="campaign_id")
            return self
        if campaign_id not in ids:
            raise DataError(f"no exposures of campaign {campaign_id!r}; campaigns: {ids[:10]}", table="exposures",
                            column="campaign_id")
        if len(ids) == 1:
            return self
        keep = (self.exposures["campaign_id"] == campaign_id).to_numpy()
        feats = self.features
        if feats is not None and isinstance(feats.index, pd.MultiIndex):
            feats = feats.xs(campaign_id, level="campaign_id") if campaign_id in \
                feats.index.get_level_values(0) else feats.iloc[0:0].droplevel(0)
        out = copy.copy(self)  # validated already: share offers, split and names, narrow the rest
        out.exposures = self.exposures.loc[keep].reset_index(drop=True)
        out.features = feats
        return out

    def features_for_exposures(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Features aligned row by row with ``exposures`` (missing where a customer has no feature row)."""
        if self.features is None:
            raise DataError("this campaign data has no pre-period features", table="features")
        f = self.features if columns is None else self.features[self._feature_columns(columns)]
        if isinstance(f.index, pd.MultiIndex):
            if "campaign_id" not in self.exposures.columns:
                raise DataError("features are per campaign but the exposures have no campaign_id", table="features")
            key = pd.MultiIndex.from_arrays([self.exposures["campaign_id"], self.exposures["customer_id"]])
        else:
            key = pd.Index(self.exposures["customer_id"])
        out = f.reindex(key)
        out.index = self.exposures.index
        return out

    def _feature_columns(self, columns: list[str]) -> list[str]:
        missing = [c for c in columns if c not in self.features.columns]
        if missing:
            raise DataError(f"no feature column(s) {missing}; features: {list(self.features.columns)}",
                            table="features", column=missing[0])
        return list(columns)

    def __len__(self) -> int:
        return len(self.exposures)

    def __repr__(self) -> str:
        arms = [self.control_name] + self.treatment_names if self.control_mask.any() else self.treatment_names
        camp = [c for c in self.campaign_ids if c is not None]
        return (f"CampaignData({len(self):,} exposures, {len(camp) or 1} campaign(s), arms {arms[:6]}"
                f"{' ...' if len(arms) > 6 else ''}, features "
                f"{'none' if self.features is None else list(self.features.columns)[:6]})")


def _pre_period_features(ds: Dataset, customers: pd.Series, first_exposure: pd.Timestamp) -> pd.DataFrame:
    """Pre-period covariates of ``customers`` from transactions strictly before ``first_exposure``."""
    ids = pd.Index(pd.unique(customers.to_numpy(dtype=object)), name="customer_id")
    before = ds.until(first_exposure).transactions
    tx = before[before["customer_id"].isin(ids).to_numpy()]
    g = tx.groupby("customer_id", sort=False)
    spend = g["amount"].sum()
    recent = tx[(tx["timestamp"] >= first_exposure - pd.Timedelta(days=90)).to_numpy()]
    spend90 = recent.groupby("customer_id", sort=False)["amount"].sum()
    key = "order_id" if "order_id" in tx.columns and tx["order_id"].notna().all() else "timestamp"
    orders = g[key].nunique()
    last = g["timestamp"].max()
    out = pd.DataFrame(index=ids)
    out["pre_spend"] = spend.reindex(ids).fillna(0.0).to_numpy(dtype=np.float64)
    out["pre_spend_90d"] = spend90.reindex(ids).fillna(0.0).to_numpy(dtype=np.float64)
    out["pre_orders"] = orders.reindex(ids).fillna(0).to_numpy(dtype=np.int64)
    days = (first_exposure - last.reindex(ids)) / pd.Timedelta(days=1)
    out["days_since_last_purchase"] = days.to_numpy(dtype=np.float64)
    return out
