"""Datasets: the seeded synthetic retail generator with known ground truth."""

from personalize.datasets.synthetic import (
    DEFAULT_DEFECT_RATES,
    RetailTruth,
    make_retail,
    make_retail_frames,
)

__all__ = ["DEFAULT_DEFECT_RATES", "RetailTruth", "make_retail", "make_retail_frames"]
