"""TransformedOutcomeLearner beyond the shared learner contract: arm weights, outcome scale, propensity options.

(The contract -- planted effect per arm, continuous outcome, shapes, pickle-free save/load,
unfitted errors -- runs on it in test_uplift_learners.py.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalize.errors import DataError, PersonalizeError
from personalize.uplift import TransformedOutcomeLearner, load_uplift_model

from test_uplift_learners import FAST, planted


def unbalanced(n: int, seed: int, treated_share: float = 0.2):
    """A campaign that treats only ``treated_share`` of the customers; effect 0.05 + 0.15 * x."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, n)
    t = np.where(rng.random(n) < treated_share, "mail", "none").astype(object)
    tau = 0.05 + 0.15 * x
    y = (rng.random(n) < 0.15 + 0.3 * (1 - x) + np.where(t == "mail", tau, 0.0)).astype(float)
    return pd.DataFrame({"x": x, "noise": rng.normal(size=n)}), t, y, tau


def test_unequal_arms_are_weighted_so_the_effect_is_unbiased():
    X, t, y, tau = unbalanced(40000, 0)
    m = TransformedOutcomeLearner(control_name="none", n_jobs=1).fit(X, t, y)
    u = m.predict(X)[:, 0]
    assert m.propensity_["shares"][1] == pytest.approx((t == "mail").mean())
    # without the weights the label Z would be dominated by the 80 % control rows: P(Z=1) = 0.2 P(y|mail)
    # + 0.8 (1 - P(y|none)), and 2 P(Z=1) - 1 would be about +0.2 here, not the effect
    assert abs(u.mean() - tau.mean()) < 0.02
    assert np.corrcoef(u, tau)[0, 1] > 0.8
    assert ((u >= -1) & (u <= 1)).all()


def test_outcomes_are_the_baseline_plus_the_effect_clipped():
    X, t, y, _ = unbalanced(20000, 1, treated_share=0.5)
    m = TransformedOutcomeLearner(control_name="none", n_jobs=1).fit(X, t, y)
    mu = m.predict_outcomes(X)
    u, base = m.predict_uplift_and_baseline(X)
    np.testing.assert_allclose(mu[:, 0], base)
    np.testing.assert_allclose(mu[:, 1], np.clip(base + u[:, 0], 0, 1))
    control = t == "none"
    assert abs(base[control].mean() - y[control].mean()) < 0.01  # the baseline model is calibrated on control


def test_given_propensity_and_its_errors(tmp_path):
    X, t, y, tau = planted(6000, 8)
    shares = {"control": 1 / 3, "coupon_a": 1 / 3, "coupon_b": 1 / 3}
    m = TransformedOutcomeLearner(control_name="control", propensity=shares, **FAST).fit(X, t, y)
    assert m.propensity_ == {"kind": "given", "shares": [1 / 3, 1 / 3, 1 / 3]}
    assert np.corrcoef(m.predict(X)[:, 1], tau[:, 1])[0, 1] > 0.6
    m.save(tmp_path / "m")
    back = load_uplift_model(tmp_path / "m")
    assert back.get_params()["propensity"] == shares
    np.testing.assert_array_equal(back.predict(X), m.predict(X))
    with pytest.raises(DataError, match="lacks arm") as e:
        TransformedOutcomeLearner(control_name="control", propensity={"control": 0.5, "coupon_a": 0.5},
                                  **FAST).fit(X, t, y)
    assert e.value.column == "propensity"
    with pytest.raises(DataError, match="positive"):
        TransformedOutcomeLearner(control_name="control", propensity={**shares, "coupon_b": 0.0}, **FAST).fit(X, t, y)
    with pytest.raises(PersonalizeError, match="'constant'"):
        TransformedOutcomeLearner(control_name="control", propensity="estimate").fit(X, t, y)


def test_defaults_are_shallow_and_overridable():
    p = TransformedOutcomeLearner().get_params()
    assert (p["num_leaves"], p["min_child_samples"], p["learning_rate"], p["n_estimators"]) == (4, 400, 0.02, 1000)
    q = TransformedOutcomeLearner(num_leaves=8, control_name="c").get_params()
    assert q["num_leaves"] == 8 and q["control_name"] == "c" and q["min_child_samples"] == 400
    assert TransformedOutcomeLearner(num_leaves=8).clone().get_params() == TransformedOutcomeLearner(
        num_leaves=8).get_params()
