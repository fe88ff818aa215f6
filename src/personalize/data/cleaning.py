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
    # points ledger: "error" (strict) refuses rows that take a customer's balance below zero; "allow" keeps them
    negative_points: Literal["error", "allow"] = "error"

    def __post_init__(self) -> None:
        checks = {"returns": ("net", "drop"), "zero_price": ("drop", "keep"),
                  "negative_price": ("error", "drop"), "unknown_items": ("error", "drop", "keep"),
                  "negative_points": ("error", "allow")}
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


def clean_transactions(tx: pd.DataFrame, options: CleaningOptions, item_ids: pd.Index | None = None, *,
                       return_details: bool = False):
    """Validate and clean cast transactions; returns the kept rows sorted by time and the report.

    With ``return_details`` also returns the netted return lines (customer_id,
    item_id, timestamp, quantity returned) and the purchase lines that netting
    changed (original quantity, ``out_pos`` = row in the kept frame or -1 when
    returned in full), so that time slices can undo returns made after them.
    """
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
    return_rows = net_rows = np.zeros(0, np.int64)
    net_orig = np.zeros(0)
    shadow = np.zeros(n, dtype=bool)
    is_return = (qty < 0) & keep
    if is_return.any() and options.returns == "net":
        qty, fully, partly, netted, net_rows, net_orig = _net_returns(tx, qty, keep, is_return)
        details.update(netted_quantity=float(netted), partially_returned_rows=int(partly))
        return_rows = np.flatnonzero(is_return)
        drop("return", is_return)
        drop("returned_purchase", fully)
        shadow = fully.copy()  # fully returned lines that every other rule would keep
    else:
        drop("return", is_return)

    if options.zero_price == "drop":
        drop("zero_price", price == 0)
        shadow &= price != 0

    if item_ids is not None:
        unknown = (~tx["item_id"].isin(item_ids)).to_numpy() & keep
        if unknown.any():
            if options.unknown_items == "error":
                raise DataError("transactions refer to items missing from the item table "
                                f"({tx['item_id'][unknown].head(3).tolist()}); use unknown_items='drop' or 'keep'",
                                table="transactions", column="item_id", rows=_rows(unknown))
            if options.unknown_items == "drop":
                drop("unknown_item", unknown)
                shadow &= tx["item_id"].isin(item_ids).to_numpy()

    if not keep.any():
        raise DataError(f"no transactions left after cleaning ({n} input rows, dropped: {dropped})",
                        table="transactions")
    out = tx.loc[keep].reset_index(drop=True) if not keep.all() else tx.reset_index(drop=True)
    out["quantity"] = qty[keep]
    order = None
    if not out["timestamp"].is_monotonic_increasing:
        order = np.argsort(out["timestamp"].to_numpy(), kind="stable")
        out = out.take(order).reset_index(drop=True)
    report = CleaningReport(input_rows=n, kept_rows=int(keep.sum()), dropped=dropped, details=details)
    if not return_details:
        return out, report
    # what point-in-time slices need to undo netting by returns made after their end
    kept_idx = np.flatnonzero(keep)
    out_pos = np.full(n, -1, dtype=np.int64)
    out_pos[kept_idx if order is None else kept_idx[order]] = np.arange(len(out))
    live = net_rows[keep[net_rows] | shadow[net_rows]]
    orig = pd.Series(net_orig, index=net_rows).reindex(live).to_numpy()
    netted_lines = tx.iloc[live].reset_index(drop=True).assign(quantity=orig, out_pos=out_pos[live])
    rcols = ["customer_id", "item_id", "timestamp"]
    returns = tx.iloc[return_rows][rcols].reset_index(drop=True).assign(
        quantity=-tx["quantity"].to_numpy()[return_rows])
    returns = returns.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return out, report, returns, netted_lines


def _duplicated(tx: pd.DataFrame) -> np.ndarray:
    """Exact duplicate rows (all but the first of each group), via 64-bit row hashes checked exactly."""
    h = pd.util.hash_pandas_object(tx, index=False).to_numpy()
    cand = pd.Series(h).duplicated(keep=False).to_numpy()
    out = np.zeros(len(tx), dtype=bool)
    if cand.any():
        idx = np.flatnonzero(cand)
        out[idx] = tx.iloc[idx].duplicated(keep="first").to_numpy()
    return out


def net_quantities(buys: pd.DataFrame, rets: pd.DataFrame) -> np.ndarray:
    """Quantities of purchase lines after netting returns (both frames: columns c, i, t, q with q > 0).

    Each return subtracts from the same customer's purchases of the same item
    made no later than the pair's last return, most recent first.
    """
    new_q = buys["q"].to_numpy(dtype=np.float64).copy()
    if not len(rets) or not len(buys):
        return new_q
    per_pair = rets.groupby(["c", "i"], sort=False).agg(returned=("q", "sum"), last_return=("t", "max"))
    b = buys[["c", "i", "t", "q"]].assign(pos=np.arange(len(buys)))
    b = b.merge(per_pair, left_on=["c", "i"], right_index=True, how="inner")
    b = b[b["t"] <= b["last_return"]]
    if not len(b):
        return new_q
    b = b.sort_values(["c", "i", "t", "pos"], ascending=[True, True, False, False], kind="stable")
    # quantity bought after (more recent than) each line, within its pair
    cum_after = b.groupby(["c", "i"], sort=False)["q"].cumsum().to_numpy() - b["q"].to_numpy()
    remaining = np.clip(b["returned"].to_numpy() - cum_after, 0, None)
    take = np.minimum(b["q"].to_numpy(), remaining)
    new_q[b["pos"].to_numpy()] = b["q"].to_numpy() - take
    return new_q


def _net_returns(tx: pd.DataFrame, qty: np.ndarray, keep: np.ndarray, is_return: np.ndarray):
    """Net every return line against the purchases it cancels; returns the new quantities and what changed."""
    ts = tx["timestamp"].to_numpy()
    cust = tx["customer_id"].to_numpy()
    item = tx["item_id"].to_numpy()
    ret_idx = np.flatnonzero(is_return)
    rets = pd.DataFrame({"c": cust[ret_idx], "i": item[ret_idx], "q": -qty[ret_idx], "t": ts[ret_idx]})
    buy_idx = np.flatnonzero(keep & (qty > 0))
    buys = pd.DataFrame({"c": cust[buy_idx], "i": item[buy_idx], "t": ts[buy_idx], "q": qty[buy_idx]})
    new_q = net_quantities(buys, rets)
    changed = new_q != buys["q"].to_numpy()
    rows = buy_idx[changed]
    original = qty[rows].copy()
    qty = qty.copy()
    qty[rows] = new_q[changed]
    fully = np.zeros(len(qty), dtype=bool)
    fully[rows[new_q[changed] <= 0]] = True
    partly = int((new_q[changed] > 0).sum())
    netted = float((original - new_q[changed]).sum())
    return qty, fully, partly, netted, rows, original
