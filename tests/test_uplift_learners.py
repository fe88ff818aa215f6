"""S-, T-, X-learner: recover a planted heterogeneous effect, multi-treatment shapes, persistence, errors.

Every learner runs the same checks (a shared, parametrized contract, like the recommenders'):
the data are generated here with a known uplift per row and arm, so a model that learns
nothing, swaps the arms or loses the categorical column fails.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from personalize.errors import BundleError, DataError, NotFittedError, PersonalizeError
from personalize.uplift import (SLearner, TLearner, TransformedOutcomeLearner, XLearner, load_uplift_model,
                                qini_coefficient)

LEARNERS = [SLearner, TLearner, XLearner, TransformedOutcomeLearner]
FAST = {"learning_rate": 0.1, "n_estimators": 200, "num_leaves": 15, "min_child_samples": 40, "n_jobs": 1}
ARMS = ("control", "coupon_a", "coupon_b")


def planted(n: int, seed: int, *, continuous: bool = False):
    """Features (numeric + a region string), an arm per row, outcome, and the true uplift per arm.

    Coupon A works on customers with high ``x1`` and in the north; coupon B on those with low
    ``x2``: different features, so a model that mixes up the arms fails.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 4))
    region = rng.choice(["north", "south", "east"], n)
    tau_a = 0.25 * x[:, 1] + 0.15 * (region == "north")
    tau_b = 0.3 * (x[:, 2] < 0.4)
    arm = rng.choice(np.array(ARMS, dtype=object), n)
    base = 0.1 + 0.3 * x[:, 0]
    tau = np.column_stack([tau_a, tau_b])
    effect = np.where(arm == "coupon_a", tau_a, np.where(arm == "coupon_b", tau_b, 0.0))
    if continuous:
        y = 40 * base + 50 * effect + rng.normal(0, 4, n)
        tau = 50 * tau
    else:
        y = (rng.random(n) < base + effect).astype(float)
    X = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "x3": x[:, 3], "region": region})
    return X, arm, y, tau


@pytest.fixture(scope="module")
def data():
    return planted(9000, 1), planted(20000, 2)


@pytest.fixture(scope="module")
def fitted(data):
    (X, t, y, _), _ = data
    return {cls: cls(control_name="control", **FAST).fit(X, t, y) for cls in LEARNERS}


@pytest.mark.parametrize("cls", LEARNERS, ids=lambda c: c.__name__)
def test_recovers_the_planted_effect_per_arm(cls, data, fitted):
    _, (Xt, tt, yt, tau) = data
    m = fitted[cls]
    assert m.treatment_names_ == ["coupon_a", "coupon_b"] and m.arm_names_[0] == "control"
    u = m.predict(Xt)
    assert u.shape == (len(Xt), 2)
    for j in range(2):
        r = np.corrcoef(u[:, j], tau[:, j])[0, 1]
        other = np.corrcoef(u[:, j], tau[:, 1 - j])[0, 1]
        assert r > 0.6, (cls.__name__, j, r)
        assert r > other + 0.4, (cls.__name__, j, r, other)  # the arms are not mixed up
        rows = (tt == "control") | (tt == m.treatment_names_[j])
        t01 = (tt[rows] != "control").astype(float)
        q = qini_coefficient(yt[rows], u[rows, j], t01)
        q_true = qini_coefficient(yt[rows], tau[rows, j], t01)  # the best a model can hope for here
        assert q > 0.6 * q_true > 0.05, (cls.__name__, j, q, q_true)
    # the categorical column carries part of coupon A's effect (+0.15 in the north; the S-learner
    # shrinks it to about half)
    north = (Xt["region"] == "north").to_numpy()
    assert u[north, 0].mean() - u[~north, 0].mean() > 0.05


@pytest.mark.parametrize("cls", LEARNERS, ids=lambda c: c.__name__)
def test_continuous_outcome(cls):
    X, t, y, _ = planted(6000, 3, continuous=True)
    Xt, _, _, tau = planted(2000, 4, continuous=True)
    m = cls(control_name="control", **FAST).fit(X, t, y)
    assert m.outcome_ == "continuous"
    u = m.predict(Xt)
    for j in range(2):
        assert np.corrcoef(u[:, j], tau[:, j])[0, 1] > 0.6
    # the average effect is about right in scale (spend units, not probabilities)
    assert abs(u[:, 0].mean() - tau[:, 0].mean()) < 3.0


@pytest.mark.parametrize("cls", LEARNERS, ids=lambda c: c.__name__)
def test_output_shapes_frames_and_outcomes(cls, data, fitted):
    _, (Xt, _, _, _) = data
    m = fitted[cls]
    f = m.predict_frame(Xt.iloc[:7])
    assert list(f.columns) == ["coupon_a", "coupon_b"] and f.index.equals(Xt.index[:7])
    np.testing.assert_array_equal(f.to_numpy(), m.predict(Xt.iloc[:7]))
    mu = m.predict_outcomes(Xt.iloc[:7])
    assert mu.shape == (7, 3) and ((mu >= 0) & (mu <= 1)).all()
    if cls in (SLearner, TLearner):  # the X- and transformed-outcome learners model the effect on its own
        np.testing.assert_allclose(mu[:, 1:] - mu[:, :1], m.predict(Xt.iloc[:7]))
    u, base = m.predict_uplift_and_baseline(Xt.iloc[:7])
    np.testing.assert_allclose(u, m.predict(Xt.iloc[:7]))
    np.testing.assert_allclose(base, mu[:, 0])
    # one row, columns in another order, an unseen region: still an answer
    row = Xt.iloc[[0]][["region", "x3", "x2", "x1", "x0"]].copy()
    row["region"] = "west"
    assert np.isfinite(m.predict(row)).all()


@pytest.mark.parametrize("cls", LEARNERS, ids=lambda c: c.__name__)
def test_save_load_round_trip_without_pickle(cls, data, fitted, tmp_path):
    _, (Xt, _, _, _) = data
    m = fitted[cls]
    m.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert "meta.json" in files and all(f == "meta.json" or f.endswith(".txt") for f in files)
    for p in (tmp_path / "m").iterdir():
        raw = p.read_bytes()
        assert not raw.startswith(b"\x80") and b"pickle" not in raw.lower()
        raw.decode("utf-8")  # every file is text
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["format_version"] == 1 and meta["arm_names"] == list(ARMS)
    assert meta["features"]["categorical"] == {"region": ["east", "north", "south"]}
    back = load_uplift_model(tmp_path / "m")
    assert type(back) is cls and back.get_params() == m.get_params()
    np.testing.assert_array_equal(back.predict(Xt), m.predict(Xt))
    np.testing.assert_array_equal(back.predict_outcomes(Xt), m.predict_outcomes(Xt))
    assert cls.load(tmp_path / "m").treatment_names_ == m.treatment_names_


def test_numpy_input_numeric_arms_and_forced_categorical(tmp_path):
    X, t, y, tau = planted(6000, 5)
    Xn = X[["x0", "x1", "x2", "x3"]].to_numpy()
    Xn = np.column_stack([Xn, (X["region"] == "north").to_numpy() * 3 + 1])  # integer-coded region 1 / 4
    arm = np.select([t == "control", t == "coupon_a"], [0, 1], 2)
    m = TLearner(categorical_features=[4], **FAST).fit(Xn, arm, y)  # control_name defaults to 0
    assert m.arm_names_ == [0, 1, 2] and m.feature_names_ == ["x0", "x1", "x2", "x3", "x4"]
    assert np.corrcoef(m.predict(Xn)[:, 0], tau[:, 0])[0, 1] > 0.6
    m.save(tmp_path / "n")
    back = load_uplift_model(tmp_path / "n")
    assert back.arm_names_ == [0, 1, 2]
    np.testing.assert_array_equal(back.predict(Xn), m.predict(Xn))


def test_x_learner_propensity_options(data, fitted, tmp_path):
    (X, t, y, _), (Xt, _, _, tau) = data
    shares = {"control": 1 / 3, "coupon_a": 1 / 3, "coupon_b": 1 / 3}
    est = fitted[XLearner]
    assert est.propensity_["kind"] == "estimated"
    g = est._pairwise_propensity(est.encoder_.transform(Xt))
    assert abs(g.mean() - 0.5) < 0.05  # randomized design: about half of each pair is treated
    for spec in ("constant", shares):
        m = XLearner(control_name="control", propensity=spec, **FAST).fit(X, t, y)
        assert np.corrcoef(m.predict(Xt)[:, 0], tau[:, 0])[0, 1] > 0.6
        m.save(tmp_path / "x")
        np.testing.assert_array_equal(load_uplift_model(tmp_path / "x").predict(Xt), m.predict(Xt))
    # a given per-row propensity of 1 - clip puts all weight on the effect model fitted on control rows
    g1 = np.full((len(Xt), 2), 0.5)
    assert not np.array_equal(m.predict(Xt, propensity=g1), m.predict(Xt, propensity=g1 * 0.2))
    with pytest.raises(DataError) as e:
        m.predict(Xt, propensity=np.full(len(Xt), 0.5))  # two treatments need two columns
    assert e.value.column == "propensity"
    with pytest.raises(DataError, match="lacks arm"):
        XLearner(control_name="control", propensity={"control": 0.5, "coupon_a": 0.5}, **FAST).fit(X, t, y)
    with pytest.raises(PersonalizeError, match="propensity"):
        XLearner(control_name="control", propensity="guess", **FAST).fit(X, t, y)


@pytest.mark.parametrize("cls", LEARNERS, ids=lambda c: c.__name__)
def test_unfitted_use_raises(cls, tmp_path):
    m = cls()
    for call in (lambda: m.predict(np.zeros((2, 3))), lambda: m.predict_frame(np.zeros((2, 3))),
                 lambda: m.predict_outcomes(np.zeros((2, 3))), lambda: m.save(tmp_path / "u")):
        with pytest.raises(NotFittedError):
            call()
    assert not (tmp_path / "u").exists()


def test_bad_input_names_the_field(data):
    (X, t, y, _), _ = data
    small = X.iloc[:300], t[:300], y[:300]

    def err(**kw):
        args = {"X": small[0], "treatment": small[1], "y": small[2], **kw}
        ctrl = args.pop("control_name", "control")
        with pytest.raises(DataError) as e:
            TLearner(control_name=ctrl, **FAST).fit(args["X"], args["treatment"], args["y"])
        return e.value

    assert err(control_name="none").column == "treatment"
    assert err(treatment=np.where(small[1] == "control", None, small[1])).column == "treatment"
    assert err(treatment=np.full(300, "control", dtype=object)).column == "treatment"
    assert err(treatment=small[1][:299]).column == "treatment"
    assert err(y=np.r_[small[2][:299], np.nan]).column == "y"
    assert err(y=np.zeros(300)).column == "y"  # binary outcome constant: nothing to learn
    assert err(X=small[0].to_numpy()).table == "features"  # strings in a numpy matrix
    inf = small[0].copy()
    inf.loc[inf.index[3], "x1"] = np.inf
    assert err(X=inf).column == "x1"
    few = np.where(np.arange(300) < 5, "rare", small[1]).astype(object)
    assert "at least" in str(err(treatment=few))
    with pytest.raises(PersonalizeError, match="learning_rate"):
        SLearner(learning_rate=0).fit(*small)
    with pytest.raises(PersonalizeError, match="unknown parameter"):
        SLearner().set_params(depth=3)


def test_predict_input_checks(data, fitted):
    _, (Xt, _, _, _) = data
    m = fitted[TLearner]
    with pytest.raises(DataError) as e:
        m.predict(Xt.drop(columns="x2"))
    assert e.value.column == "x2"
    with pytest.raises(DataError, match="pass a DataFrame"):
        m.predict(np.zeros((3, 5)))
    bad = Xt.iloc[:3].copy()
    bad["x0"] = "high"
    with pytest.raises(DataError) as e:
        m.predict(bad)
    assert e.value.column == "x0"


def test_load_errors(tmp_path, data, fitted):
    with pytest.raises(BundleError, match="meta.json missing"):
        load_uplift_model(tmp_path)
    fitted[SLearner].save(tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    (tmp_path / "s" / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(BundleError, match="format_version"):
        load_uplift_model(tmp_path / "s")
    (tmp_path / "s" / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "s" / meta["models"]["mu"]["file"]).unlink()
    with pytest.raises(BundleError, match="missing"):
        load_uplift_model(tmp_path / "s")
    fitted[TLearner].save(tmp_path / "t")
    with pytest.raises(BundleError, match="not a SLearner"):
        SLearner.load(tmp_path / "t")


def test_numeric_only_model_rejects_a_string_column_and_resave_drops_stale_files(tmp_path):
    X, t, y, _ = planted(3000, 6)
    Xn = X.drop(columns="region")
    m = TLearner(control_name="control", **FAST).fit(Xn, t, y)
    bad = Xn.iloc[:3].copy()
    bad["x3"] = "n/a"
    with pytest.raises(DataError) as e:
        m.predict(bad)
    assert e.value.column == "x3"
    m.save(tmp_path / "m")
    assert len(list((tmp_path / "m").glob("model_*.txt"))) == 3
    keep = t != "coupon_b"
    small = TLearner(control_name="control", **FAST).fit(Xn[keep], t[keep], y[keep])
    small.save(tmp_path / "m")
    assert len(list((tmp_path / "m").glob("model_*.txt"))) == 2
    np.testing.assert_array_equal(load_uplift_model(tmp_path / "m").predict(Xn), small.predict(Xn))
