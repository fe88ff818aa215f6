"""Production scoring in one call: train on closed label windows, score every customer today.

:func:`churn_table` is what a model bundle (``personalize train``) or an
audience export needs: one row per customer with ``churn_risk``,
``churn_band`` and ``churn_reasons`` (marketer sentences joined with
:data:`REASON_SEP`, ``" | "``: a sentence may itself contain "; ", as in
"no purchase for 120 days; usually buys every 30").
"""

from __future__ import annotations

from typing import Any, TYPE_CHECKING

import pandas as pd

from personalize.churn.model import ChurnModel
from personalize.churn.training_sets import production_cutoffs, scoring_set, training_set

if TYPE_CHECKING:
    from personalize.data import DateLike, History

__all__ = ["train_churn_model", "churn_table", "REASON_SEP", "split_reasons"]

REASON_SEP = " | "


def split_reasons(text: Any) -> list[str]:
    """The reasons of one ``churn_reasons`` cell as a list (empty for missing / empty)."""
    if not isinstance(text, str) or not text:
        return []
    return text.split(REASON_SEP)


def train_churn_model(data: History, *, horizon_days: float = 90.0, n_cutoffs: int = 3, spacing_days: float = 30.0,
                      model: ChurnModel | None = None) -> ChurnModel:
    """Fit ``model`` (default ``ChurnModel()``) on the latest ``n_cutoffs`` closed label windows."""
    cuts = production_cutoffs(data, horizon_days=horizon_days, n_cutoffs=n_cutoffs, spacing_days=spacing_days)
    return (model if model is not None else ChurnModel()).fit(training_set(data, cuts, horizon_days=horizon_days))


def churn_table(data: History, model: ChurnModel | None = None, *, as_of: DateLike | None = None, horizon_days: float | None = None,
                reasons: int = 3) -> pd.DataFrame:
    """Every customer's churn risk as of ``as_of`` (default: the end of the data).

    Trains a model first when ``model`` is None. Returns ``customer_id``,
    ``churn_risk`` (calibrated probability), ``churn_band`` and, with
    ``reasons > 0``, ``churn_reasons``; sorted by customer id.
    """
    h = float(horizon_days if horizon_days is not None else
              (model.horizon_days_ if model is not None and model.horizon_days_ else 90.0))
    if model is None:
        model = train_churn_model(data, horizon_days=h)
    today = scoring_set(data, as_of, horizon_days=h)
    scored = model.score(today, reasons=reasons)
    out = pd.DataFrame({"customer_id": scored["customer_id"], "churn_risk": scored["probability"],
                        "churn_band": scored["band"].astype("str")})
    if reasons:
        out["churn_reasons"] = scored["reasons"].map(REASON_SEP.join).astype("str")
    return out.sort_values("customer_id", kind="stable").reset_index(drop=True)
