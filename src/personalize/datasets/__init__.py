"""Datasets: the seeded synthetic retail generator with known ground truth, and where the real ones are."""

from personalize.datasets.locate import DATA_DIR_ENV, DATASETS, DatasetNotFound, dataset_path, find_dataset
from personalize.datasets.synthetic import (
    DEFAULT_DEFECT_RATES,
    RetailTruth,
    make_retail,
    make_retail_frames,
)

__all__ = ["DEFAULT_DEFECT_RATES", "RetailTruth", "make_retail", "make_retail_frames",
           "DATA_DIR_ENV", "DATASETS", "DatasetNotFound", "dataset_path", "find_dataset"]
