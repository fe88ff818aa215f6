"""The propensity contract: one mixin of tests that every propensity model passes (churn today; offer
acceptance and the like as they come).

Each ``Test<Model>`` class only says how to build its model; the planted data
has a known logistic truth, so a model that fits but ranks badly fails.
"""

from __future__ import annotations

import inspect
import json
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from personalize.churn import ChurnModel, PropensityModel, load_model
from personalize.churn.metrics import binary_metrics
from personalize.errors import NotFittedError, PersonalizeError
from personalize.offers import AcceptanceModel


@lru_cache(maxsize=1)
def planted(n: int = 6000, seed: int = 11):
    """Features with a known effect on P(event): two informative columns, one interaction, two noise columns."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"recency_days": rng.exponential(60, n), "orders": rng.poisson(4, n).astype(float),
                      "spend": rng.lognormal(3, 1, n), "noise_a": rng.normal(size=n), "noise_b": rng.random(n)})
    logit = -1.0 + 0.02 * (X["recency_days"] - 60) - 0.35 * (X["orders"] - 4) + 0.3 * np.log(X["spend"] / 20)
    p = 1 / (1 + np.exp(-logit.to_numpy()))
    y = (rng.random(n) < p).astype(np.int8)
    cut = int(0.7 * n)
    return X.iloc[:cut], y[:cut], X.iloc[cut:], y[cut:], p[cut:]


class PropensityContract:
    """Tests shared by every propensity model. Subclasses define ``make()``."""

    #: share of the oracle's AUC (the true probabilities) the model must reach on held-out rows
    min_auc_ratio = 0.95

    @classmethod
    def make(cls):  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls):
        Xtr, ytr, _Xte, _yte, _p = planted()
        return cls.make().fit(Xtr, ytr)

    def test_keyword_only_params_stored_untouched(self):
        m = self.make()
        sig = inspect.signature(type(m).__init__)
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for name, p in sig.parameters.items() if name != "self")
        assert m.get_params() == self.make().get_params()
        assert not [k for k in vars(m) if k.endswith("_")]  # nothing learned before fit

    def test_unfitted_use_raises(self, tmp_path):
        m = self.make()
        _Xtr, _ytr, Xte, _yte, _p = planted()
        for call in (lambda: m.predict_probability(Xte), lambda: m.save(tmp_path / "m")):
            with pytest.raises(NotFittedError):
                call()

    def test_fit_returns_self(self):
        Xtr, ytr, _Xte, _yte, _p = planted()
        m = self.make()
        assert m.fit(Xtr.iloc[:1500], ytr[:1500]) is m

    def test_calibrated_probabilities(self, fitted):
        _Xtr, _ytr, Xte, yte, _p = planted()
        p = fitted.predict_probability(Xte)
        assert p.shape == (len(Xte),) and np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
        assert abs(p.mean() - yte.mean()) < 0.03  # calibrated: the mean prediction is the observed rate
        assert binary_metrics(yte, p)["brier"] < binary_metrics(yte, np.full(len(yte), yte.mean()))["brier"]

    def test_minimum_quality_on_planted_data(self, fitted):
        _Xtr, _ytr, Xte, yte, truth = planted()
        auc = binary_metrics(yte, fitted.predict_probability(Xte))["auc"]
        oracle = binary_metrics(yte, truth)["auc"]
        assert auc >= self.min_auc_ratio * oracle, (auc, oracle)

    def test_save_load_round_trip_without_pickle(self, fitted, tmp_path):
        _Xtr, _ytr, Xte, _yte, _p = planted()
        fitted.save(tmp_path / "m")
        files = [f for f in (tmp_path / "m").rglob("*") if f.is_file()]
        assert files and not [f for f in files if f.suffix in (".pkl", ".pickle", ".joblib")]
        for f in files:
            assert b"\x80\x04\x95" not in f.read_bytes()[:16]  # no pickle stream anywhere
            if f.suffix == ".json":
                json.loads(f.read_text())
        loaded = load_model(tmp_path / "m")
        assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
        np.testing.assert_array_equal(loaded.predict_probability(Xte), fitted.predict_probability(Xte))

    def test_bad_input_is_a_clear_error(self, fitted):
        _Xtr, _ytr, Xte, _yte, _p = planted()
        with pytest.raises(PersonalizeError):
            fitted.predict_probability(Xte.drop(columns=["orders"]))
        with pytest.raises(PersonalizeError):
            self.make().fit(Xte.iloc[:50], np.zeros(49))


class TestPropensityModel(PropensityContract):
    @classmethod
    def make(cls):
        return PropensityModel(n_estimators=400, learning_rate=0.05, min_child_samples=40, n_jobs=1)


class TestChurnModel(PropensityContract):
    @classmethod
    def make(cls):
        return ChurnModel(n_estimators=400, learning_rate=0.05, min_child_samples=40, n_jobs=1)


class TestAcceptanceModel(PropensityContract):
    @classmethod
    def make(cls):
        return AcceptanceModel(n_estimators=400, learning_rate=0.05, min_child_samples=40, n_jobs=1)

