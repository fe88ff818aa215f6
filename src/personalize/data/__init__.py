"""Data contract, validation, cleaning and loading (`Dataset`)."""

from personalize.data.campaign import CampaignData
from personalize.data.cleaning import CleaningOptions, CleaningReport
from personalize.data.dataset import Dataset, DateLike, History
from personalize.data.schema import TABLES
from personalize.data.vocab import Vocabulary
from personalize.errors import DataError

__all__ = ["Dataset", "CampaignData", "History", "DateLike", "DataError", "CleaningOptions", "CleaningReport", "Vocabulary", "TABLES"]
