"""Cleaning transactions, with a report that accounts for every input row.

Rules, applied in this order (a row is counted under the first rule that
removes it, so ``kept_rows + sum(dropped.values()) == input_rows`` always):

1. ``exact_duplicate`` -- a line identical in every column to an earlier line.
2. ``guest`` -- no customer id (guest checkout).
3. ``non_product`` -- item id in ``non_product_items`` or matching
   ``non_product_pattern`` (postage, fees, manual adjustments, vouchers).
4. ``negative_price`` -- only when ``negative_price="drop"`` (default: error).
5. ``zero_quantity`` -- quantity exactly zero.
6. Returns and cancellations (quantity < 0):
   ``returns="net"`` (default) subtracts the returned quantity from the same
   customer's purchases of the same item made no later than the return, most
   recent first; the return line is dropped as ``return``; a purchase line
   whose whole quantity was returned is dropped as ``returned_purchase``; a
   partly returned line is kept with its reduced quantity.
   ``returns="drop"`` drops return lines as ``return`` and keeps purchases.
7. ``zero_price`` -- unit price zero (``zero_price="drop"``, the default) --
   free gifts and samples say nothing about preference or spend.
8. ``unknown_item`` -- item missing from the item table, when one is given
   and ``unknown_items="drop"`` (``"error"`` raises, ``"keep"`` keeps).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from personalize.errors import DataError

DEFAULT_NON_PRODUCT = ("POST", "DOT", "M", "m", "C2", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS",
                       "ADJUST", "ADJUST2", "TEST001", "TEST002")
DEFAULT_NON_PRODUCT_PATTERN = r"^(gift_\d+_\d+|DCGS\w*)$"


@dataclass(frozen=True)
class CleaningOptions:
    """How transactions are cleaned (see the module docstring for the rules)."""

    returns: Literal["net", "drop"] = "net"
    zero_price: Literal["drop", "keep"] = "drop"
    negative_price: Literal["error", "drop"] = "error"
    unknown_items: Literal["error", "drop", "keep"] = "error"
    non_product_items: tuple[str, ...] = ()
    non_product_pattern: str | None = None
    drop_duplicates: bool = True
    future_tolerance_days: float = 1.0
    now: pd.Timestamp | None = None  # reference "now" for the future check (default: wall clock)

    def __post_init__(self) -> None:
        checks = {"returns": ("net", "drop"), "zero_price": ("drop", "keep"),
                  "negative_price": ("error", "drop"), "unknown_items": ("error", "drop", "keep")}
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise DataError(f"cleaning option {name}={getattr(self, name)!r}; expected one of {allowed}")
        if self.non_product_pattern:
            try:
                re.compile(self.non_product_pattern)
            except re.error as exc:
                raise DataError(f"cleaning option non_product_pattern is not a valid regex: {exc}") from None


@dataclass
class CleaningReport:
    """Machine-readable account of cleaning: every input row is kept or dropped for one reason."""

    input_rows: int
    kept_rows: int
    dropped: dict[str, int] = field(default_factory=dict)
    details: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        total = self.kept_rows + sum(self.dropped.values())
        if total != self.input_rows:  # pragma: no cover - an internal bug, never a user error
            raise AssertionError(f"cleaning lost rows: kept {self.kept_rows} + dropped {self.dropped} != "
                                 f"input {self.input_rows}")

    def to_dict(self) -> dict:
        return asdict(self)


def _rows(mask: np.ndarray) -> list[int]:
    return np.flatnonzero(mask)[:5].tolist()


def clean_transactions(tx: pd.DataFrame, options: CleaningOptions,
                       item_ids: pd.Index | None = None) -> tuple[pd.DataFrame, CleaningReport]:
    """Validate and clean cast transactions; returns the kept rows sorted by time and the report."""
    n = len(tx)
    if n == 0:
        raise DataError("no data rows", table="transactions")
    if tx["item_id"].isna().all():
        raise DataError("every item id is empty (is the item column mapped right?)", table="transactions",
                        column="item_id")
    if tx["customer_id"].isna().all():
        raise DataError("every customer id is empty (is the customer column mapped right?)",
                        table="transactions", column="customer_id")
    miss_item = tx["item_id"].isna().to_numpy()
    if miss_item.any():
        raise DataError("empty item ids", table="transactions", column="item_id", rows=_rows(miss_item))

    now = options.now if options.now is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    limit = pd.Timestamp(now) + pd.Timedelta(days=options.future_tolerance_days)
    future = (tx["timestamp"] > limit).to_numpy()
    if future.any():
        raise DataError(f"timestamps in the future (later than {limit:%Y-%m-%d %H:%M}; tolerance "
                        f"{options.future_tolerance_days:g} days)", table="transactions", column="timestamp",
                        rows=_rows(future))

    keep = np.ones(n, dtype=bool)
    dropped: dict[str, int] = {}

    def drop(reason: str, mask: np.ndarray) -> None:
        m = mask & keep
        c = int(m.sum())
        if c:
            dropped[reason] = dropped.get(reason, 0) + c
            keep[m] = False

    if options.drop_duplicates:
        drop("exact_duplicate", _duplicated(tx))
    drop("guest", tx["customer_id"].isna().to_numpy())
    if options.non_product_items or options.non_product_pattern:
        np_mask = tx["item_id"].isin(list(options.non_product_items)).to_numpy().copy()
        if options.non_product_pattern:
            np_mask |= tx["item_id"].str.match(options.non_product_pattern).fillna(False).to_numpy(dtype=bool)
        drop("non_product", np_mask)

    price = tx["price"].to_numpy()
    neg_price = (price < 0) & keep
    if neg_price.any():
        if options.negative_price == "error":
            raise DataError("negative prices", table="transactions", column="price", rows=_rows(neg_price))
        drop("negative_price", neg_price)

    qty = tx["quantity"].to_numpy().copy()
    drop("zero_quantity", qty == 0)

    details: dict[str, float] = {}
    is_return = (qty < 0) & keep
    if is_return.any() and options.returns == "net":
        qty, fully, partly, netted = _net_returns(tx, qty, keep, is_return)
        details.update(netted_quantity=float(netted), partially_returned_rows=int(partly))
        drop("return", is_return)
        drop("returned_purchase", fully)
    else:
        drop("return", is_return)

    if options.zero_price == "drop":
        drop("zero_price", price == 0)

    if item_ids is not None:
        unknown = (~tx["item_id"].isin(item_ids)).to_numpy() & keep
        if unknown.any():
            if options.unknown_items == "error":
                raise DataError("transactions refer to items missing from the item table "
                                f"({tx['item_id'][unknown].head(3).tolist()}); use unknown_items='drop' or 'keep'",
                                table="transactions", column="item_id", rows=_rows(unknown))
            if options.unknown_items == "drop":
                drop("unknown_item", unknown)

    if not keep.any():
        raise DataError(f"no transactions left after cleaning ({n} input rows, dropped: {dropped})",
                        table="transactions")
    out = tx.loc[keep].reset_index(drop=True)
    out["quantity"] = qty[keep]
    if not out["timestamp"].is_monotonic_increasing:
        order = np.argsort(out["timestamp"].to_numpy(), kind="stable")
        out = out.take(order).reset_index(drop=True)
    report = CleaningReport(input_rows=n, kept_rows=int(keep.sum()), dropped=dropped, details=details)
    return out, report


def _duplicated(tx: pd.DataFrame) -> np.ndarray:
    """Exact duplicate rows (all but the first of each group), via 64-bit row hashes checked exactly."""
    h = pd.util.hash_pandas_object(tx, index=False).to_numpy()
    cand = pd.Series(h).duplicated(keep=False).to_numpy()
    out = np.zeros(len(tx), dtype=bool)
    if cand.any():
        idx = np.flatnonzero(cand)
        out[idx] = tx.iloc[idx].duplicated(keep="first").to_numpy()
    return out


def _net_returns(tx: pd.DataFrame, qty: np.ndarray, keep: np.ndarray, is_return: np.ndarray):
    """Subtract returned quantities from earlier purchases of the same customer and item, latest first."""
    ts = tx["timestamp"].to_numpy()
    cust = tx["customer_id"].to_numpy()
    item = tx["item_id"].to_numpy()
    ret_idx = np.flatnonzero(is_return)
    ret = pd.DataFrame({"c": cust[ret_idx], "i": item[ret_idx], "q": -qty[ret_idx], "t": ts[ret_idx]})
    per_pair = ret.groupby(["c", "i"], sort=False).agg(returned=("q", "sum"), last_return=("t", "max"))
    buy_idx = np.flatnonzero(keep & (qty > 0))
    buys = pd.DataFrame({"row": buy_idx, "c": cust[buy_idx], "i": item[buy_idx], "t": ts[buy_idx],
                         "q": qty[buy_idx]})
    buys = buys.merge(per_pair, left_on=["c", "i"], right_index=True, how="inner")
    buys = buys[buys["t"] <= buys["last_return"]]
    netted = 0.0
    fully = np.zeros(len(qty), dtype=bool)
    partly = 0
    if len(buys):
        buys = buys.sort_values(["c", "i", "t", "row"], ascending=[True, True, False, False], kind="stable")
        # quantity bought after (more recent than) each line, within its pair
        cum_after = buys.groupby(["c", "i"], sort=False)["q"].cumsum().to_numpy() - buys["q"].to_numpy()
        remaining_return = np.clip(buys["returned"].to_numpy() - cum_after, 0, None)
        take = np.minimum(buys["q"].to_numpy(), remaining_return)
        new_q = buys["q"].to_numpy() - take
        rows = buys["row"].to_numpy()
        qty = qty.copy()
        qty[rows] = new_q
        fully[rows[new_q <= 0]] = True
        partly = int(((take > 0) & (new_q > 0)).sum())
        netted = float(take.sum())
    return qty, fully, partly, netted
