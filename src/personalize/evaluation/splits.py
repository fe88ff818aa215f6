"""Train/test splits for honest offline evaluation of recommenders.

Two ways to hold out purchases:

* :func:`time_split` -- the realistic one: train on everything strictly before
  ``test_start``, test on ``test_start <= timestamp < test_end``. Nothing after
  ``test_start`` reaches a model.
* :func:`leave_last_basket_out` -- each customer's last basket is the test;
  everything else trains. Common in the literature, but it lets other
  customers' later purchases into the training data (it is *not*
  point-in-time correct); prefer :func:`time_split` to compare models.

A :class:`Split` carries the training :class:`~personalize.data.Dataset`, the
test transactions and the per-customer ground truth of both tracks:

``all``
    every (customer, item) bought in the test period counts, including items
    the customer bought before; models may recommend past items.
``discovery``
    only items *new to the customer* (never bought in the training data)
    count; models must exclude past purchases from their recommendations.

Only customers with at least one training purchase are evaluated; customers
whose first purchase falls in the test period ("new customers") are kept apart
in :attr:`Split.new_customers` (and :meth:`Split.truth` with
``track="new_customers"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from personalize import _sets
from personalize.data import Dataset
from personalize.data.validate import to_timestamp
from personalize.errors import DataError

TRACKS = ("all", "discovery")
_ALL_TRACKS = TRACKS + ("new_customers",)


def _subset(ds: Dataset, mask: np.ndarray) -> Dataset:
    """Rows of ``ds`` where ``mask`` holds, keeping vocabularies and auxiliary tables."""
    rows = np.flatnonzero(mask)
    tx = ds.transactions.iloc[rows].reset_index(drop=True)
    return Dataset(tx, items=ds.items, customers=ds.customers, offers=ds.offers, exposures=ds.exposures,
                   customer_vocab=ds.customer_vocab, item_vocab=ds.item_vocab,
                   customer_idx=ds.customer_idx[rows], item_idx=ds.item_idx[rows], report=ds.report)


@dataclass(frozen=True)
class Split:
    """A train/test split with the ground truth of each evaluation track.

    Attributes
    ----------
    train:
        The training :class:`Dataset` (shares the vocabularies of the full dataset).
    test:
        Held-out transactions (canonical columns).
    kind:
        ``"time"`` or ``"last_basket"``.
    test_start, test_end:
        The test window for a time split (``test_end`` None = open-ended).
    truth_pairs:
        Unique (customer_idx, item_idx) pairs bought in the test period by customers
        with training history, as an ``(n, 2)`` int64 array, with ``new_to_customer``
        marking the pairs that count in the discovery track.
    new_customer_pairs:
        The same for customers without training history.
    """

    train: Dataset
    test: pd.DataFrame
    kind: str
    test_start: pd.Timestamp | None
    test_end: pd.Timestamp | None
    truth_pairs: np.ndarray
    new_to_customer: np.ndarray
    new_customer_pairs: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ vocabularies
    @property
    def customer_vocab(self):
        return self.train.customer_vocab

    @property
    def item_vocab(self):
        return self.train.item_vocab

    def _pairs(self, track: str) -> np.ndarray:
        if track not in _ALL_TRACKS:
            raise DataError(f"unknown track {track!r}; expected one of {', '.join(_ALL_TRACKS)}")
        if track == "all":
            return self.truth_pairs
        if track == "discovery":
            return self.truth_pairs[self.new_to_customer]
        return self.new_customer_pairs

    def customer_index(self, track: str = "all") -> np.ndarray:
        """Sorted indices (into ``customer_vocab``) of the customers evaluated in ``track``."""
        key = ("cidx", track)
        if key not in self._cache:
            self._cache[key] = _sets.unique(self._pairs(track)[:, 0])
        return self._cache[key]

    def customers(self, track: str = "all") -> np.ndarray:
        """Customer ids evaluated in ``track`` (sorted)."""
        return self.customer_vocab.id_of(self.customer_index(track))

    def n_customers(self, track: str = "all") -> int:
        return int(self.customer_index(track).size)

    def truth(self, track: str = "all") -> pd.DataFrame:
        """Ground truth of ``track`` as a DataFrame ``[customer_id, item_id]`` (unique pairs)."""
        p = self._pairs(track)
        return pd.DataFrame({"customer_id": self.customer_vocab.id_of(p[:, 0]).astype(str),
                             "item_id": self.item_vocab.id_of(p[:, 1]).astype(str)})

    def relevant(self, track: str = "all"):
        """Ground truth as a boolean CSR matrix, one row per :meth:`customer_index` entry, one column per item."""
        import scipy.sparse as sp

        key = ("rel", track)
        if key not in self._cache:
            p = self._pairs(track)
            cidx = self.customer_index(track)
            rows = np.searchsorted(cidx, p[:, 0])
            m = sp.csr_matrix((np.ones(len(p), dtype=bool), (rows, p[:, 1])),
                              shape=(len(cidx), len(self.item_vocab)))
            m.sum_duplicates()
            self._cache[key] = m
        return self._cache[key]

    def summary(self) -> dict:
        """Sizes of the split, for reports."""
        return {
            "kind": self.kind,
            "test_start": None if self.test_start is None else self.test_start.isoformat(),
            "test_end": None if self.test_end is None else self.test_end.isoformat(),
            "train_transactions": len(self.train),
            "test_transactions": len(self.test),
            "customers": {t: self.n_customers(t) for t in _ALL_TRACKS},
        }


def _build(train: Dataset, test_cidx: np.ndarray, test_iidx: np.ndarray, test: pd.DataFrame, *, kind: str,
           test_start=None, test_end=None) -> Split:
    n_items = len(train.item_vocab)
    test_keys = _sets.unique(test_cidx.astype(np.int64) * n_items + test_iidx.astype(np.int64))
    train_keys = _sets.unique(train.customer_idx.astype(np.int64) * n_items + train.item_idx.astype(np.int64))
    train_customers = _sets.unique(train.customer_idx)
    pairs = np.stack([test_keys // n_items, test_keys % n_items], axis=1)
    known = _sets.isin(pairs[:, 0], train_customers)
    existing = pairs[known]
    new_to_customer = ~_sets.isin(test_keys[known], train_keys)
    return Split(train=train, test=test, kind=kind, test_start=test_start, test_end=test_end,
                 truth_pairs=existing, new_to_customer=new_to_customer, new_customer_pairs=pairs[~known])


def time_split(dataset: Dataset, test_start, test_end=None) -> Split:
    """Train on transactions before ``test_start``; test on ``[test_start, test_end)``.

    ``test_end=None`` tests on everything from ``test_start`` on. Raises
    :class:`DataError` when either side is empty.
    """
    start = to_timestamp(test_start, "test_start")
    end = to_timestamp(test_end, "test_end") if test_end is not None else None
    if end is not None and end <= start:
        raise DataError(f"test_end {end} must be after test_start {start}")
    train = dataset.until(start)
    stop = end
    if stop is None:
        stop = max(start, dataset.last_timestamp) + pd.Timedelta(1, "us") if len(dataset) else start
    test_ds = dataset.between(start, stop)
    if len(train) == 0:
        raise DataError(f"no transactions before test_start {start} (data starts {dataset.first_timestamp})")
    if len(test_ds) == 0:
        raise DataError(f"no transactions in the test window {start} .. {end or 'end'} "
                        f"(data ends {dataset.last_timestamp})")
    return _build(train, test_ds.customer_idx, test_ds.item_idx, test_ds.transactions, kind="time",
                  test_start=start, test_end=end)


def leave_last_basket_out(dataset: Dataset, *, min_baskets: int = 2) -> Split:
    """Hold out each customer's last basket (customers with at least ``min_baskets`` baskets).

    A basket is an ``order_id`` when the data has one, otherwise the lines a
    customer bought at the same timestamp. Not point-in-time correct: the
    training data holds other customers' later purchases.
    """
    if min_baskets < 2:
        raise DataError(f"min_baskets must be at least 2, got {min_baskets}")
    tx = dataset.transactions
    if len(tx) == 0:
        raise DataError("the dataset has no transactions")
    cidx = dataset.customer_idx
    if "order_id" in tx.columns and tx["order_id"].notna().all():
        basket_key = tx["order_id"].to_numpy(dtype=object)
    else:
        basket_key = tx["timestamp"].to_numpy()
    frame = pd.DataFrame({"c": cidx, "b": pd.factorize(basket_key)[0], "t": tx["timestamp"].to_numpy()})
    # order baskets by their first timestamp per customer; the last one is held out
    first = frame.groupby(["c", "b"], sort=False)["t"].min().reset_index()
    first = first.sort_values(["c", "t", "b"], kind="stable")
    n_baskets = first.groupby("c")["b"].transform("size").to_numpy()
    last = first[~first.duplicated("c", keep="last") & (n_baskets >= min_baskets)]
    held = pd.MultiIndex.from_frame(last[["c", "b"]])
    is_test = pd.MultiIndex.from_frame(frame[["c", "b"]]).isin(held)
    if not is_test.any():
        raise DataError(f"no customer has at least {min_baskets} baskets")
    train = _subset(dataset, ~is_test)
    rows = np.flatnonzero(is_test)
    test = tx.iloc[rows].reset_index(drop=True)
    return _build(train, cidx[rows], dataset.item_idx[rows], test, kind="last_basket")
