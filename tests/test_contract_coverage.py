"""Every kind of model the library can load has its contract test class (so a new model cannot skip them)."""

from __future__ import annotations

import test_propensity_contract
import test_recommenders_contract
import test_twostage  # noqa: F401 - defines TestTwoStageContract

from personalize.churn.model import _KINDS
from personalize.recommenders import registry
from personalize.store.bundles import _LOADERS


def _subclasses(cls) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def test_every_recommender_kind_has_a_contract_test_class():
    covered = {c.make().kind for c in _subclasses(test_recommenders_contract.RecommenderContract)}
    assert set(registry()) <= covered, f"recommender kinds without a contract test: {set(registry()) - covered}"


def test_every_propensity_kind_has_a_contract_test_class():
    covered = {c.make().bundle_kind for c in _subclasses(test_propensity_contract.PropensityContract)}
    propensity_kinds = {cls.bundle_kind for cls in _KINDS.values()}
    assert propensity_kinds <= set(_LOADERS), propensity_kinds - set(_LOADERS)  # every kind loads from a bundle
    assert propensity_kinds and propensity_kinds <= covered, propensity_kinds - covered
