"""The one validated way data enters personalize."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
import datetime as _dt
from typing import Literal, TypeAlias

import numpy as np
import pandas as pd
import scipy.sparse as sp

from personalize import _sets
from personalize.data import io as dio
from personalize.data.cleaning import CleaningOptions, CleaningReport, clean_transactions, net_quantities
from personalize.data.loyalty import check_feedback, check_points, slice_feedback, slice_points
from personalize.data.schema import OFFER_KINDS, TABLES, TRANSACTIONS
from personalize.data.validate import apply_mapping, cast_table, prepare_table, to_timestamp
from personalize.data.vocab import Vocabulary
from personalize.errors import DataError

_AUX = ("items", "customers", "offers", "exposures")
#: the customer-voice and loyalty tables (not keyed; sliced by time like exposures)
_LEDGERS = ("feedback", "points")
#: optional transaction columns held as categoricals (the values are unchanged): a channel, a store or a coupon
#: code repeats over millions of lines; as strings each such column costs about 10-15 bytes a line (200-300 MB at
#: 20M lines), as codes 1-4
LABEL_COLUMNS = ("channel", "store_id", "coupon_id")
Weight = Literal["count", "quantity", "spend"]


def _split_mapping(mapping: Mapping | None) -> dict[str, dict[str, str]]:
    """Accept a flat mapping (for transactions) or one nested per table."""
    if not mapping:
        return {}
    if all(isinstance(v, Mapping) for v in mapping.values()) and set(mapping) <= set(TABLES):
        return {k: dict(v) for k, v in mapping.items()}
    if any(isinstance(v, Mapping) for v in mapping.values()):
        raise DataError(f"column mapping mixes tables and columns; use {{table: {{field: column}}}} with tables "
                        f"{sorted(TABLES)}")
    return {"transactions": dict(mapping)}


def _check_offer_kinds(offers: pd.DataFrame) -> None:
    bad = ~offers["kind"].isin(OFFER_KINDS).to_numpy()
    if bad.any():
        raise DataError(f"unknown offer kind {offers['kind'][bad].head(3).tolist()}; expected one of "
                        f"{list(OFFER_KINDS)}", table="offers", column="kind", rows=np.flatnonzero(bad)[:5].tolist())


def _check_offers(offers: pd.DataFrame) -> None:
    """Offer rules the casts cannot see: no negative amounts, valid_from <= valid_to, eligibility a JSON object."""
    import json

    def fail(msg: str, column: str, mask) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            raise DataError(f"{msg} ({offers['offer_id'][mask].head(3).tolist()})", table="offers", column=column,
                            rows=np.flatnonzero(mask)[:5].tolist())

    for col in ("value", "min_spend", "unit_cost", "per_customer_cap"):
        if col in offers:
            fail("negative values", col, (offers[col] < 0).fillna(False).to_numpy(dtype=bool))
    if "valid_from" in offers and "valid_to" in offers:
        fail("valid_to is before valid_from", "valid_to",
             (offers["valid_to"] < offers["valid_from"]).fillna(False).to_numpy(dtype=bool))
    if "eligibility" in offers:
        def not_object(text) -> bool:
            if text is None or (isinstance(text, float) and np.isnan(text)):
                return False
            try:
                return not isinstance(json.loads(text), dict)
            except ValueError:
                return True
        fail("eligibility must be a JSON object, e.g. {\"segments\": [\"vip\"]}", "eligibility",
             [not_object(t) for t in offers["eligibility"].tolist()])


def _ledgers(feedback: pd.DataFrame | None, points: pd.DataFrame | None, maps: Mapping, options: CleaningOptions,
             decimal: str = ".") -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Map, cast and check the feedback table and the points ledger (see :mod:`personalize.data.loyalty`)."""
    fb = prepare_table(feedback, "feedback", maps.get("feedback"), decimal=decimal)
    if fb is not None:
        fb = check_feedback(fb, now=options.now, tolerance_days=options.future_tolerance_days)
    pts = prepare_table(points, "points", maps.get("points"), decimal=decimal)
    if pts is not None:
        pts = check_points(pts, now=options.now, tolerance_days=options.future_tolerance_days,
                           negative=options.negative_points)
    return fb, pts


class Dataset:
    """Validated purchase history: transactions plus optional items, customers, offers, exposures, feedback
    and a points ledger.

    Build one with :meth:`from_frames`, :meth:`from_csv`, :meth:`from_parquet`
    or :meth:`from_sql` (or an adapter in :mod:`personalize.data.adapters`).
    Transactions are cleaned (see :mod:`personalize.data.cleaning`), sorted by
    time and indexed against vocabularies shared by every time slice.
    """

    def __init__(self, transactions: pd.DataFrame, *, items: pd.DataFrame | None, customers: pd.DataFrame | None,
                 offers: pd.DataFrame | None, exposures: pd.DataFrame | None, customer_vocab: Vocabulary,
                 item_vocab: Vocabulary, customer_idx: np.ndarray, item_idx: np.ndarray,
                 report: CleaningReport, returns: pd.DataFrame | None = None,
                 netted: pd.DataFrame | None = None, feedback: pd.DataFrame | None = None,
                 points: pd.DataFrame | None = None) -> None:
        # internal: use the from_* constructors, which validate
        self.transactions = transactions
        self.items = items
        self.customers = customers
        self.offers = offers
        self.exposures = exposures
        # surveys, ratings, reviews, complaints and the loyalty points ledger, sorted by time
        self.feedback = feedback
        self.points = points
        self.customer_vocab = customer_vocab
        self.item_vocab = item_vocab
        self.customer_idx = customer_idx
        self.item_idx = item_idx
        self.report = report
        # return lines netted against purchases (customer_id, item_id, timestamp, quantity returned)
        self.returns = returns
        # purchase lines changed by netting, with their original quantity: lets a time slice undo
        # returns made after its end, so nothing after a cutoff leaks into it (see _undo_late_returns)
        self._netted = netted
        self._root: Dataset = self
        # rows of this slice that the full data does not have (purchases returned in full, but only
        # after the slice's end); None when there are none
        self.restored_mask: np.ndarray | None = None
        self._window: tuple[pd.Timestamp | None, pd.Timestamp | None] = (None, None)
        # the root's rows [lo, hi) this dataset's transactions are (None: a slice with restored rows)
        self._rows: tuple[int, int] | None = (0, len(transactions))
        self._order_codes: np.ndarray | None = None
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frames(cls, transactions: pd.DataFrame, *, items: pd.DataFrame | None = None,
                    customers: pd.DataFrame | None = None, offers: pd.DataFrame | None = None,
                    exposures: pd.DataFrame | None = None, mapping: Mapping | None = None,
                    options: CleaningOptions | None = None, time_format: str | None = None,
                    decimal: str = ".", feedback: pd.DataFrame | None = None,
                    points: pd.DataFrame | None = None) -> "Dataset":
        """Validate, clean and index DataFrames. ``mapping`` maps canonical field -> your column name."""
        options = options or CleaningOptions()
        maps = _split_mapping(mapping)
        if transactions is None:
            raise DataError("transactions are required", table="transactions")
        decimal = transactions.attrs.get("decimal", decimal) if isinstance(transactions, pd.DataFrame) else decimal
        tx = apply_mapping(transactions, TRANSACTIONS, maps.get("transactions"))
        tx = cast_table(tx, TRANSACTIONS, time_format=time_format, decimal=decimal)
        aux = {}
        for name, df in zip(_AUX, (items, customers, offers, exposures)):
            aux[name] = prepare_table(df, name, maps.get(name), decimal=decimal)
        if aux["offers"] is not None:
            _check_offer_kinds(aux["offers"])
            _check_offers(aux["offers"])
        fb, pts = _ledgers(feedback, points, maps, options, decimal)
        item_index = pd.Index(aux["items"]["item_id"]) if aux["items"] is not None else None
        tx, report, returns, netted = clean_transactions(tx, options, item_index, return_details=True)
        tx["amount"] = tx["quantity"].to_numpy() * tx["price"].to_numpy()
        if aux["exposures"] is not None:
            aux["exposures"] = aux["exposures"].sort_values("exposed_at", kind="stable").reset_index(drop=True)
        return cls._index(tx, report=report, returns=returns, netted=netted, feedback=fb, points=pts, **aux)

    @classmethod
    def _index(cls, tx: pd.DataFrame, *, report: CleaningReport, items=None, customers=None, offers=None,
               exposures=None, returns=None, netted=None, feedback=None, points=None) -> "Dataset":
        tx = _label_columns(tx)
        cust_codes, cust_uniques = pd.factorize(tx["customer_id"], sort=True)
        item_codes, item_uniques = pd.factorize(tx["item_id"], sort=True)
        cvocab = Vocabulary(pd.Index(np.asarray(cust_uniques, dtype=object)))
        ivocab = Vocabulary(pd.Index(np.asarray(item_uniques, dtype=object)))
        cidx = cust_codes.astype(np.int32)
        iidx = item_codes.astype(np.int32)
        extra_c = customers["customer_id"].to_numpy(dtype=object) if customers is not None else None
        if netted is not None and len(netted):  # purchases returned in full still exist before their return
            more = netted["customer_id"].to_numpy(dtype=object)
            extra_c = more if extra_c is None else np.concatenate([extra_c, more])
        if extra_c is not None and (~pd.Index(extra_c).isin(cvocab.ids)).any():
            old = cvocab.ids
            cvocab = Vocabulary.from_values(old, extra_c)
            cidx = cvocab.index(old).astype(np.int32)[cidx]  # remap codes, no second pass over the ids
        extra_i = items["item_id"].to_numpy(dtype=object) if items is not None else None
        if netted is not None and len(netted):
            more = netted["item_id"].to_numpy(dtype=object)
            extra_i = more if extra_i is None else np.concatenate([extra_i, more])
        if extra_i is not None and (~pd.Index(extra_i).isin(ivocab.ids)).any():
            old = ivocab.ids
            ivocab = Vocabulary.from_values(old, extra_i)
            iidx = ivocab.index(old).astype(np.int32)[iidx]
        return cls(tx, items=items, customers=customers, offers=offers, exposures=exposures, customer_vocab=cvocab,
                   item_vocab=ivocab, customer_idx=cidx, item_idx=iidx, report=report, returns=returns,
                   netted=netted, feedback=feedback, points=points)

    @classmethod
    def from_csv(cls, transactions: str | Path, *, items: str | Path | None = None,
                 customers: str | Path | None = None, offers: str | Path | None = None,
                 exposures: str | Path | None = None, sep: str | None = None, decimal: str = ".",
                 encoding: str = "utf-8", feedback: str | Path | None = None, points: str | Path | None = None,
                 **kwargs) -> "Dataset":
        """Load CSV files (every column read as text, so ids keep leading zeros)."""
        frames = {name: dio.read_csv(p, sep=sep, decimal=decimal, encoding=encoding, table=name)
                  if p is not None else None
                  for name, p in (("transactions", transactions), ("items", items), ("customers", customers),
                                  ("offers", offers), ("exposures", exposures), ("feedback", feedback),
                                  ("points", points))}
        return cls.from_frames(frames.pop("transactions"), decimal=decimal, **frames, **kwargs)

    @classmethod
    def from_parquet(cls, transactions: str | Path, *, items: str | Path | None = None,
                     customers: str | Path | None = None, offers: str | Path | None = None,
                     exposures: str | Path | None = None, feedback: str | Path | None = None,
                     points: str | Path | None = None, **kwargs) -> "Dataset":
        """Load Parquet files or globs (``sales/*.parquet``)."""
        frames = {name: dio.read_parquet(p, table=name) if p is not None else None
                  for name, p in (("transactions", transactions), ("items", items), ("customers", customers),
                                  ("offers", offers), ("exposures", exposures), ("feedback", feedback),
                                  ("points", points))}
        return cls.from_frames(frames.pop("transactions"), **frames, **kwargs)

    @classmethod
    def from_sql(cls, transactions: str, *, database: str | Path | None = None, setup: Sequence[str] = (),
                 items: str | None = None, customers: str | None = None, offers: str | None = None,
                 exposures: str | None = None, feedback: str | None = None, points: str | None = None,
                 **kwargs) -> "Dataset":
        """Load each table with a DuckDB query (against ``database``, after ``setup`` statements such as ATTACH)."""
        frames = {name: dio.read_sql(q, database=database, setup=setup, table=name) if q is not None else None
                  for name, q in (("transactions", transactions), ("items", items), ("customers", customers),
                                  ("offers", offers), ("exposures", exposures), ("feedback", feedback),
                                  ("points", points))}
        return cls.from_frames(frames.pop("transactions"), **frames, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def n_customers(self) -> int:
        """Customers with at least one kept transaction in this slice."""
        return int(_sets.unique(self.customer_idx).size) if len(self.customer_idx) else 0

    @property
    def n_items(self) -> int:
        """Items with at least one kept transaction in this slice."""
        return int(_sets.unique(self.item_idx).size) if len(self.item_idx) else 0

    @property
    def first_timestamp(self) -> pd.Timestamp | None:
        return self.transactions["timestamp"].iloc[0] if len(self.transactions) else None

    @property
    def last_timestamp(self) -> pd.Timestamp | None:
        return self.transactions["timestamp"].iloc[-1] if len(self.transactions) else None

    def __len__(self) -> int:
        return len(self.transactions)

    def __repr__(self) -> str:
        return (f"Dataset({len(self)} transactions, {self.n_customers} customers, {self.n_items} items, "
                f"{self.first_timestamp} .. {self.last_timestamp})")

    def summary(self) -> dict:
        """The numbers ``personalize validate`` prints."""
        r = self.report
        fmt = (lambda t: None if t is None else t.isoformat())
        return {
            "input_rows": r.input_rows,
            "kept_rows": r.kept_rows,
            "dropped": dict(r.dropped),
            "details": dict(r.details),
            "transactions": len(self),
            "customers": self.n_customers,
            "items": self.n_items,
            "orders": int(self.transactions["order_id"].nunique()) if "order_id" in self.transactions else None,
            "first_timestamp": fmt(self.first_timestamp),
            "last_timestamp": fmt(self.last_timestamp),
            "revenue": float(self.transactions["amount"].sum()),
            # feedback and points are listed when present (the four classic tables always are)
            "tables": {name: (None if getattr(self, name) is None else len(getattr(self, name)))
                       for name in _AUX + tuple(n for n in _LEDGERS if getattr(self, n) is not None)},
        }

    # ------------------------------------------------------------------ whole-dataset changes
    def _root_only(self, what: str) -> None:
        if self._root is not self:
            raise DataError(f"{what} works on a whole dataset, not on a time slice (call it before until/between)")

    def without_customers(self, erased) -> "Dataset":
        """This dataset without the customers for whom ``erased(customer_ids) -> bool mask`` holds.

        Every trace goes: transactions, returns, the customers and exposures
        tables, and the customer vocabulary (the ids of a model fitted on the
        result do not include them). Used to honour the store's erasure list.
        """
        self._root_only("without_customers")

        def keep(df):
            if df is None or not len(df):
                return df
            m = ~np.asarray(erased(df["customer_id"].to_numpy(dtype=object)), dtype=bool)
            return df if m.all() else df.loc[m].reset_index(drop=True)

        tx = keep(self.transactions)
        if tx is self.transactions and all(keep(getattr(self, n)) is getattr(self, n)
                                           for n in ("customers", "exposures", "returns", "feedback", "points")):
            return self
        return Dataset._index(tx.reset_index(drop=True), report=self.report, items=self.items,
                              customers=keep(self.customers), offers=self.offers, exposures=keep(self.exposures),
                              returns=keep(self.returns), netted=keep(self._netted), feedback=keep(self.feedback),
                              points=keep(self.points))

    def of_customers(self, keep: np.ndarray) -> "Dataset":
        """Only the customers with ``keep[customer index]`` true (a bool mask over the customer vocabulary),
        vocabularies unchanged: a sample of customers to fit on, whose indices still match the whole data's.

        Transactions, exposures and feedback of the others go; the items and customers tables stay. The
        result is a view of its own: its time slices (``until``/``between``) cut the sample, and it has no
        returns to undo (take the sample from a slice that is already as of its cutoff).
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self.customer_vocab),):
            raise DataError(f"of_customers needs one flag per customer ({len(self.customer_vocab)}), "
                            f"got shape {keep.shape}")
        rows = keep[self.customer_idx]
        if rows.all():
            return self

        def own(df):
            if df is None or not len(df):
                return df
            idx = self.customer_vocab.index(df["customer_id"].to_numpy(dtype=object))
            return df.loc[(idx >= 0) & keep[np.maximum(idx, 0)]].reset_index(drop=True)

        out = Dataset(self.transactions.loc[rows].reset_index(drop=True), items=self.items,
                      customers=self.customers, offers=self.offers, exposures=own(self.exposures),
                      customer_vocab=self.customer_vocab, item_vocab=self.item_vocab,
                      customer_idx=self.customer_idx[rows], item_idx=self.item_idx[rows], report=self.report,
                      returns=None, netted=None, feedback=own(self.feedback), points=own(self.points))
        return out

    def with_tables(self, *, items: pd.DataFrame | None = None, customers: pd.DataFrame | None = None,
                    offers: pd.DataFrame | None = None, exposures: pd.DataFrame | None = None,
                    mapping: Mapping | None = None, decimal: str = ".", feedback: pd.DataFrame | None = None,
                    points: pd.DataFrame | None = None, options: CleaningOptions | None = None) -> "Dataset":
        """This dataset with more tables (validated like any input; ``mapping`` as in :meth:`from_frames`).

        A table the dataset already has is merged column by column, the new
        one winning where both have a column (e.g. a CRM export's consent flags
        added to the customers an adapter derived from the transactions); a
        new feedback table or points ledger replaces the old one (``options``:
        the future tolerance and the ledger's negative-balance policy).
        """
        self._root_only("with_tables")
        maps = _split_mapping(mapping) if mapping else {}
        new = {name: prepare_table(df, name, maps.get(name), decimal=decimal)
               for name, df in zip(_AUX, (items, customers, offers, exposures))}
        if new["offers"] is not None:
            _check_offer_kinds(new["offers"])
            _check_offers(new["offers"])
        fb, pts = _ledgers(feedback, points, maps, options or CleaningOptions(), decimal)
        merged = {}
        for name in _AUX:
            old, add = getattr(self, name), new[name]
            if add is None or old is None or TABLES[name].key is None:
                merged[name] = add if add is not None else old
                continue
            key = TABLES[name].key
            keep = [c for c in old.columns if c == key or c not in add.columns]
            merged[name] = old[keep].merge(add, on=key, how="outer")
        if merged["exposures"] is not None:
            merged["exposures"] = merged["exposures"].sort_values("exposed_at", kind="stable").reset_index(drop=True)
        return Dataset._index(self.transactions, report=self.report, returns=self.returns, netted=self._netted,
                              feedback=fb if fb is not None else self.feedback,
                              points=pts if pts is not None else self.points, **merged)

    def with_purchases(self, purchases: pd.DataFrame) -> "Dataset":
        """This dataset plus already validated purchase lines (canonical columns), e.g. the service's events.

        Lines whose (customer, order, item) is already in the data are skipped
        (an order exported by the shop and also posted as events counts once).
        The cleaning report is unchanged: it describes the input files.
        """
        self._root_only("with_purchases")
        if purchases is None or not len(purchases):
            return self
        add = purchases.copy()
        for col in ("order_id", "channel", "store_id", "coupon_id", "discount"):
            if col in self.transactions.columns and col not in add.columns:
                add[col] = None
        if "price" not in add.columns or add["price"].isna().any():
            known = self.transactions.groupby("item_id")["price"].median()
            add["price"] = add.get("price", pd.Series(np.nan, index=add.index)).fillna(
                add["item_id"].map(known)).fillna(0.0)
        if "order_id" in self.transactions.columns and "order_id" in add.columns:
            key = ["customer_id", "order_id", "item_id"]
            have = pd.MultiIndex.from_frame(self.transactions[key].astype("str"))
            dup = add["order_id"].notna().to_numpy() & \
                pd.MultiIndex.from_frame(add[key].astype("str")).isin(have)
            add = add.loc[~dup]
        if not len(add):
            return self
        add["amount"] = add["quantity"].to_numpy(np.float64) * add["price"].to_numpy(np.float64)
        cols = list(self.transactions.columns)
        tx = pd.concat([self.transactions, add[cols]], ignore_index=True)
        tx = tx.sort_values("timestamp", kind="stable").reset_index(drop=True)
        return Dataset._index(tx, report=self.report, items=self.items, customers=self.customers,
                              offers=self.offers, exposures=self.exposures, returns=self.returns,
                              netted=self._netted, feedback=self.feedback, points=self.points)

    def with_exposures(self, exposures: pd.DataFrame) -> "Dataset":
        """This dataset plus already validated exposure rows (canonical columns), e.g. offers shown by the service.

        Rows to offers missing from the catalog are dropped (they cannot be
        learned from); added rows keep the table's other columns empty.
        """
        self._root_only("with_exposures")
        if exposures is None or not len(exposures):
            return self
        add = exposures
        if self.offers is not None and "offer_id" in add.columns:
            known = add["offer_id"].isna() | add["offer_id"].isin(self.offers["offer_id"].astype(str))
            add = add.loc[known.to_numpy()]
        if not len(add):
            return self
        base = self.exposures
        exp = add if base is None else pd.concat([base, add.reindex(columns=base.columns.union(add.columns,
                                                                                               sort=False))],
                                                 ignore_index=True)
        exp = exp.sort_values("exposed_at", kind="stable").reset_index(drop=True)
        return Dataset._index(self.transactions, report=self.report, items=self.items, customers=self.customers,
                              offers=self.offers, exposures=exp, returns=self.returns, netted=self._netted,
                              feedback=self.feedback, points=self.points)

    def with_feedback(self, feedback: pd.DataFrame) -> "Dataset":
        """This dataset plus already validated feedback rows (canonical columns), e.g. the service's events.

        The rows are appended to the feedback table (created when there is none) and the table re-sorted by time;
        a row the table already has (same customer, time, kind, score and item) is skipped.
        """
        return self._with_ledger("feedback", feedback)

    def with_points(self, points: pd.DataFrame) -> "Dataset":
        """This dataset plus already validated points ledger rows (canonical columns), e.g. the service's events
        (a row the ledger already has, same customer, time, delta, reason and order, is skipped)."""
        return self._with_ledger("points", points)

    def _with_ledger(self, name: str, rows: pd.DataFrame | None) -> "Dataset":
        self._root_only(f"with_{name}")
        if rows is None or not len(rows):
            return self
        base = getattr(self, name)
        key = (["customer_id", "timestamp", "kind", "score", "item_id"] if name == "feedback"
               else ["customer_id", "timestamp", "delta", "reason", "order_id"])
        if base is not None and len(base) and all(c in base.columns and c in rows.columns for c in key):
            # a row the table already has (an export that also holds what the service received) counts once
            have = pd.MultiIndex.from_frame(base[key].astype("str"))
            rows = rows.loc[~pd.MultiIndex.from_frame(rows[key].astype("str")).isin(have)]
            if not len(rows):
                return self
        if base is None:
            table = rows.reset_index(drop=True)
        else:
            cols = base.columns.union(rows.columns, sort=False)
            table = pd.concat([base.reindex(columns=cols), rows.reindex(columns=cols)], ignore_index=True)
        table = table.sort_values("timestamp", kind="stable").reset_index(drop=True)
        tables = {"feedback": self.feedback, "points": self.points, name: table}
        return Dataset._index(self.transactions, report=self.report, items=self.items, customers=self.customers,
                              offers=self.offers, exposures=self.exposures, returns=self.returns,
                              netted=self._netted, **tables)

    # ------------------------------------------------------------------ slicing
    def _slice(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> "Dataset":
        """The root dataset's data in ``[start, end)``, as it was known at ``end``."""
        root = self._root
        lo = root._pos(start) if start is not None else 0
        hi = root._pos(end) if end is not None else len(root.transactions)
        tx = root.transactions.iloc[lo:hi]
        if lo:
            tx = tx.reset_index(drop=True)
        cidx, iidx = root.customer_idx[lo:hi], root.item_idx[lo:hi]
        tx, cidx, iidx, restored = root._undo_late_returns(tx, cidx, iidx, lo, start, end)
        exp = root.exposures
        if exp is not None:
            t = exp["exposed_at"]
            m = np.ones(len(exp), dtype=bool)
            if start is not None:
                m &= (t >= start).to_numpy()
            if end is not None:
                m &= (t < end).to_numpy()
            exp = exp.loc[m].reset_index(drop=True)
        rets = root.returns
        if rets is not None and len(rets):
            t = rets["timestamp"]
            m = np.ones(len(rets), dtype=bool)
            if start is not None:
                m &= (t >= start).to_numpy()
            if end is not None:
                m &= (t < end).to_numpy()
            rets = rets.loc[m].reset_index(drop=True)
        out = Dataset(tx, items=root.items, customers=root.customers, offers=root.offers, exposures=exp,
                      customer_vocab=root.customer_vocab, item_vocab=root.item_vocab, customer_idx=cidx,
                      item_idx=iidx, report=root.report, returns=rets, netted=None,
                      feedback=slice_feedback(root.feedback, start, end), points=slice_points(root.points, start, end))
        out._root = root
        out._window = (start, end)
        out.restored_mask = restored
        out._rows = (lo, hi) if restored is None else None
        return out

    def _undo_late_returns(self, tx: pd.DataFrame, cidx: np.ndarray, iidx: np.ndarray, lo: int,
                           start: pd.Timestamp | None, end: pd.Timestamp | None):
        """Restore purchase quantities that returns made at or after ``end`` had netted away.

        Cleaning nets every return against earlier purchases; a slice that ends
        before the return must not know about it (point-in-time correctness).
        """
        net, rets = self._netted, self.returns
        if end is None or net is None or not len(net) or rets is None or not len(rets):
            return tx, cidx, iidx, None
        late = rets[rets["timestamp"] >= end]
        if not len(late):
            return tx, cidx, iidx, None
        t = net["timestamp"]
        inwin = (t < end).to_numpy().copy()
        if start is not None:
            inwin &= (t >= start).to_numpy()
        cand = net[inwin]
        late_pairs = pd.MultiIndex.from_frame(late[["customer_id", "item_id"]])
        cand = cand[pd.MultiIndex.from_frame(cand[["customer_id", "item_id"]]).isin(late_pairs)]
        if not len(cand):
            return tx, cidx, iidx, None
        cand_pairs = pd.MultiIndex.from_frame(cand[["customer_id", "item_id"]])
        early = rets[(rets["timestamp"] < end).to_numpy()
                     & pd.MultiIndex.from_frame(rets[["customer_id", "item_id"]]).isin(cand_pairs)]
        ren = {"customer_id": "c", "item_id": "i", "timestamp": "t", "quantity": "q"}
        new_q = net_quantities(cand[list(ren)].rename(columns=ren), early[list(ren)].rename(columns=ren))
        out_pos = cand["out_pos"].to_numpy()
        present = out_pos >= 0
        tx = tx.copy()
        q = tx["quantity"].to_numpy(dtype=np.float64).copy()
        pos = out_pos[present] - lo
        q[pos] = new_q[present]
        tx["quantity"] = q
        tx["amount"] = q * tx["price"].to_numpy()
        back = ~present & (new_q > 0)
        if back.any():
            add = cand[back].drop(columns=["out_pos"]).assign(quantity=new_q[back])
            add["amount"] = add["quantity"].to_numpy() * add["price"].to_numpy()
            tx = pd.concat([tx, add[tx.columns]], ignore_index=True)
            cidx = np.concatenate([cidx, self.customer_vocab.index(add["customer_id"].to_numpy(dtype=object))
                                   .astype(np.int32)])
            iidx = np.concatenate([iidx, self.item_vocab.index(add["item_id"].to_numpy(dtype=object))
                                   .astype(np.int32)])
            order = np.argsort(tx["timestamp"].to_numpy(), kind="stable")
            tx = tx.take(order).reset_index(drop=True)
            cidx, iidx = cidx[order], iidx[order]
            restored = np.r_[np.zeros(len(tx) - int(back.sum()), dtype=bool), np.ones(int(back.sum()), dtype=bool)]
            return tx, cidx, iidx, restored[order]
        return tx, cidx, iidx, None

    def _pos(self, when) -> int:
        ts = self.transactions["timestamp"].to_numpy()
        return int(np.searchsorted(ts, pd.Timestamp(when).to_datetime64().astype("datetime64[ns]"), side="left"))

    def until(self, cutoff) -> "Dataset":
        """Transactions (and exposures, returns, feedback, points) strictly before ``cutoff``, as known at ``cutoff``.

        Vocabularies are unchanged. Purchases later returned are restored to
        their quantity before that return when the return is at or after the cutoff.
        """
        c = to_timestamp(cutoff, "cutoff")
        start, end = self._window
        return self._slice(start, c if end is None else min(end, c))

    def between(self, start, end) -> "Dataset":
        """Transactions (and exposures, returns, feedback, points) with ``start <= timestamp < end``, as known at
        ``end`` (a complaint resolved at or after ``end`` is still open in the slice)."""
        s, e = to_timestamp(start, "start"), to_timestamp(end, "end")
        if e < s:
            raise DataError(f"end {e} is before start {s}")
        s0, e0 = self._window
        return self._slice(s if s0 is None else max(s0, s), e if e0 is None else min(e0, e))

    # ------------------------------------------------------------------ matrices
    def interaction_matrix(self, weight: Weight = "count", *, half_life_days: float | None = None,
                           now=None) -> sp.csr_matrix:
        """Customer x item matrix (float32) over the shared vocabularies.

        ``weight``: ``count`` (number of lines), ``quantity`` (units) or ``spend``
        (amount). ``half_life_days`` discounts older lines by ``0.5 ** (age / half_life)``
        relative to ``now`` (default: the last timestamp of this slice).
        """
        if weight == "count":
            w = np.ones(len(self), dtype=np.float64)
        elif weight == "quantity":
            w = self.transactions["quantity"].to_numpy(dtype=np.float64)
        elif weight == "spend":
            w = self.transactions["amount"].to_numpy(dtype=np.float64)
        else:
            raise DataError(f"weight must be 'count', 'quantity' or 'spend', got {weight!r}")
        if half_life_days is not None and len(self):
            if half_life_days <= 0:
                raise DataError(f"half_life_days must be positive, got {half_life_days}")
            ref = to_timestamp(now, "now") if now is not None else self.last_timestamp
            ref64 = ref.to_datetime64().astype("datetime64[ns]")  # keeps nanoseconds, unlike np.datetime64(ref)
            age = (ref64 - self.transactions["timestamp"].to_numpy()) / np.timedelta64(1, "D")
            w = w * np.power(0.5, np.clip(age, 0, None) / half_life_days)
        shape = (len(self.customer_vocab), len(self.item_vocab))
        m = sp.csr_matrix((w.astype(np.float32), (self.customer_idx, self.item_idx)), shape=shape)
        m.sum_duplicates()
        return m

    def order_codes(self) -> np.ndarray | None:
        """Each transaction line's order code (int64; -1 where ``order_id`` is missing), numbered by first
        appearance: what ``pd.factorize(transactions["order_id"])[0]`` gives, without hashing the id strings
        again. None without an ``order_id`` column.

        The root dataset factorizes its order ids once and keeps the codes (int32, 4 bytes a line); a time slice
        whose lines are the root's own takes its part of them (renumbered, an integer pass, unless it starts at
        the first line, where the root's numbering already is the slice's)."""
        if "order_id" not in self.transactions.columns:
            return None
        root = self._root
        if self._rows is None or root is self:
            return self._own_order_codes().astype(np.int64)
        lo, hi = self._rows
        part = root._own_order_codes()[lo:hi].astype(np.int64)
        return part if lo == 0 else _sets.first_appearance_codes(part)

    def _own_order_codes(self) -> np.ndarray:
        if self._order_codes is None:
            codes = pd.factorize(self.transactions["order_id"])[0]
            self._order_codes = codes.astype(np.int32 if len(codes) < 2 ** 31 else np.int64)
        return self._order_codes

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """sha256 over the canonical transactions (and the other tables' sizes and keys)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            cols = [c for c in ("customer_id", "item_id", "timestamp", "quantity", "price") if c in self.transactions]
            h.update(str(len(self)).encode())
            if len(self):
                h.update(pd.util.hash_pandas_object(self.transactions[cols], index=False).to_numpy().tobytes())
            for name in _AUX + _LEDGERS:
                df = getattr(self, name)
                if df is not None:
                    h.update(name.encode())
                    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


def _label_columns(tx: pd.DataFrame) -> pd.DataFrame:
    """``tx`` with the :data:`LABEL_COLUMNS` it has as categoricals of strings (missing stays missing). The
    frame passed in is not changed; the other columns are not copied."""
    todo = [c for c in LABEL_COLUMNS if c in tx.columns and not isinstance(tx[c].dtype, pd.CategoricalDtype)]
    if not todo:
        return tx
    out = tx.copy(deep=False)
    for c in todo:
        out[c] = tx[c].astype("str").astype("category")
    return out


#: what analytics and churn functions read: a Dataset, or a canonical transactions frame
History: TypeAlias = "Dataset | pd.DataFrame"
#: a point in time as users write it (anything ``pd.Timestamp`` understands)
DateLike: TypeAlias = "str | pd.Timestamp | _dt.date | np.datetime64"
