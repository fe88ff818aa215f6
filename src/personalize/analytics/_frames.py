"""Shared helpers: accept a Dataset or a canonical transactions frame."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize.data.validate import to_timestamp
from personalize.errors import DataError

if TYPE_CHECKING:
    from personalize.data import History


def transactions_of(data: History, *, need_amount: bool = True) -> pd.DataFrame:
    """Return the canonical transactions frame of ``data``.

    ``data`` is a :class:`personalize.data.Dataset` (its ``transactions``) or a
    DataFrame with at least ``customer_id`` and ``timestamp`` and either
    ``amount`` or ``quantity`` and ``price``. The frame is not copied when it
    already has every column; otherwise a shallow copy gets ``amount`` added.
    """
    tx = getattr(data, "transactions", data)
    if not isinstance(tx, pd.DataFrame):
        raise DataError(f"expected a Dataset or a pandas DataFrame, got {type(data).__name__}",
                        table="transactions")
    for col in ("customer_id", "timestamp"):
        if col not in tx.columns:
            raise DataError("required column is missing", table="transactions", column=col)
    if not pd.api.types.is_datetime64_any_dtype(tx["timestamp"]):
        raise DataError("must be a datetime column (datetime64)", table="transactions",
                        column="timestamp")
    if need_amount and "amount" not in tx.columns:
        if "quantity" in tx.columns and "price" in tx.columns:
            tx = tx.assign(amount=tx["quantity"].to_numpy(np.float64)
                           * tx["price"].to_numpy(np.float64))
        else:
            raise DataError("need 'amount' or both 'quantity' and 'price'",
                            table="transactions", column="amount")
    return tx


def optional_table(data: History, name: str, explicit: pd.DataFrame | None) -> pd.DataFrame | None:
    """``explicit`` if given, else ``data.<name>`` when ``data`` is a Dataset."""
    if explicit is not None:
        return explicit
    if isinstance(data, pd.DataFrame):
        return None
    return getattr(data, name, None)


as_timestamp = to_timestamp  # one parser for user dates across the library


def customer_codes(customer_ids: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Factorize customer ids: (codes aligned with input, sorted unique ids)."""
    codes, uniques = pd.factorize(pd.Series(customer_ids, copy=False), sort=True)
    return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object)
