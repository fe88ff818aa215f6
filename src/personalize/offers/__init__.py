"""Offers: the catalog and its contact policy, acceptance propensity, and next-best-offer.

    from personalize.offers import OfferCatalog, AcceptanceModel, acceptance_training_set, score_offers
    catalog = OfferCatalog.from_frame(ds.offers)
    model = AcceptanceModel().fit_exposures(acceptance_training_set(ds, catalog), catalog)
    scores = score_offers(ds, catalog, model, customer_table(ds), as_of=end)
    scores.rank("C1", channel="email", n=3, now=pd.Timestamp.now())
"""

from personalize.offers.acceptance import AcceptanceModel, AcceptanceSet, acceptance_training_set, score_pairs
from personalize.offers.catalog import CHANNELS, OfferCatalog, Rules
from personalize.offers.eligibility import REASONS, ContactPolicy, CustomerState, eligibility
from personalize.offers.features import OFFER_FEATURES, DayFeatures, Economics, customer_frame, economics, pair_features
from personalize.offers.scores import CandidateAffinity, OfferScores, score_offers

__all__ = ["AcceptanceModel", "AcceptanceSet", "acceptance_training_set", "score_pairs", "CHANNELS", "OfferCatalog",
           "Rules", "REASONS", "ContactPolicy", "CustomerState", "eligibility", "OFFER_FEATURES", "Economics",
           "customer_frame", "economics", "pair_features", "DayFeatures", "OfferScores", "CandidateAffinity",
           "score_offers"]
