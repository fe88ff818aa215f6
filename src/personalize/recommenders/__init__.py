"""Recommenders on one contract (see :mod:`personalize.recommenders.base`).

    from personalize.recommenders import Popular, ItemKNN, ALS, BPR, BuyAgain, TwoStage, Filters, load_recommender
"""

from personalize.recommenders.als import ALS, BPR
from personalize.recommenders.base import (
    DEFAULT_FALLBACK,
    EXCLUDE_MODES,
    FALLBACK_SOURCES,
    Recommender,
    registry,
)
from personalize.recommenders.buyagain import BuyAgain
from personalize.recommenders.filters import Filters, ItemCatalog, ParameterError
from personalize.recommenders.io import load_recommender, save_recommender
from personalize.recommenders.itemknn import ItemKNN
from personalize.recommenders.popular import Popular
from personalize.recommenders.twostage import TwoStage  # registers kind "twostage" for load_recommender

__all__ = [
    "Recommender", "Popular", "ItemKNN", "ALS", "BPR", "BuyAgain", "TwoStage", "Filters", "ItemCatalog",
    "ParameterError", "load_recommender", "save_recommender", "registry", "EXCLUDE_MODES", "FALLBACK_SOURCES",
    "DEFAULT_FALLBACK",
]

