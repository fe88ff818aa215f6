"""Recommenders on one contract (see :mod:`personalize.recommenders.base`).

    from personalize.recommenders import ALS, BuyAgain, Filters, LiveEvents, load_recommender
"""

from personalize.recommenders.als import ALS, BPR
from personalize.recommenders.base import Recommender
from personalize.recommenders.buyagain import BuyAgain, Repurchase
from personalize.recommenders.candidates import CandidateTable
from personalize.recommenders.ease import EASE
from personalize.recommenders.catalog import ItemCatalog
from personalize.recommenders.fallback import DEFAULT_FALLBACK, FALLBACK_SOURCES
from personalize.recommenders.filters import Filters
from personalize.recommenders.io import load_recommender, save_recommender
from personalize.recommenders.itemknn import ItemKNN
from personalize.recommenders.live import LiveEvents
from personalize.recommenders.popular import Popular
from personalize.recommenders.query import EXCLUDE_MODES, Query
from personalize.recommenders.kinds import make, registry
from personalize.recommenders.twostage import TwoStage

__all__ = [
    "Recommender", "Popular", "ItemKNN", "ALS", "BPR", "EASE", "BuyAgain", "Repurchase", "TwoStage", "Filters", "ItemCatalog",
    "LiveEvents", "CandidateTable", "Query", "load_recommender", "save_recommender", "registry", "make",
    "EXCLUDE_MODES", "FALLBACK_SOURCES", "DEFAULT_FALLBACK",
]
