"""Distributed features and labels in Spark SQL, with the definitions of the pandas path.

* :func:`profiles` -- :func:`personalize.analytics.profiles` (the single customer view as of a date);
* :func:`customer_view` -- :func:`personalize.analytics.customer_view`: profiles, RFM scores and
  segments, lifecycle stages, membership tiers and CLV (simple, and BG/NBD or MBG/NBD + Gamma-Gamma:
  ranked on the holdout, fitted on the driver from the per-customer summary and scored in partitions,
  with the pandas path's status and notes -- the steps are
  :mod:`personalize.analytics.customers`' own functions);
* :func:`churn_features`, :func:`labels`, :func:`snapshot`, :func:`training_set` -- the point-in-time
  churn snapshots of :mod:`personalize.churn` (features strictly before a cutoff, labels from the
  horizon after it), collected as the same :class:`~personalize.churn.TrainingSet` the
  LightGBM models train on.

Every definition is the pandas path's (see those modules' docstrings); the
parity tests compare them value by value. How the numbers are made equal:
per-customer sums add in the pandas path's order (time, then input order),
through an ordered fold (:func:`ordered_sums`) instead of Spark's unordered
``sum``, so they are bit-identical; day and time differences are computed from the same integer
nanoseconds. The churn features go one step further: each partition's whole customers, in time
order, go through the pandas path's own function
(:func:`personalize.churn.features.purchase_day_columns`). What is *not* bit-identical, within 1e-9 relative:

* population totals that only choose the top categories and channels
  (ties between two categories' total spend could order them differently);
* the trailing-window spend behind ``tier_since`` (both take differences of
  running sums, the pandas path over all customers at once, this one per
  customer; a tier whose threshold is met within rounding could start at a
  different order).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from personalize.analytics.segments import (DEFAULT_SEGMENT_RULES, LIFECYCLE_STAGES, LifecycleConfig, SegmentRule,
                                            TierConfig, _threshold_score)
from personalize.churn.features import DEFAULT_WINDOWS
from personalize.churn.training_sets import TrainingSet
from personalize.data.validate import to_timestamp
from personalize.errors import ConvergenceError, DataError, PersonalizeError
from personalize.spark.data import POS, RESTORED, SparkDataset, materialize

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["profiles", "customer_view", "rfm_scores", "churn_features", "labels", "snapshot", "training_set",
           "ordered_sums", "midranks", "ProfileFrames"]

NS_DAY = 86_400_000_000_000
NS_SEC = 1_000_000_000
MAX_CHANNELS = 10


def _F():
    from pyspark.sql import functions as F
    return F


def _W():
    from pyspark.sql import Window
    return Window


# ---------------------------------------------------------------------------- building blocks
def ordered_sums(df: DataFrame, keys: Sequence[str], order: Sequence[Column], sums: Mapping[str, Column], *,
                 firsts: Sequence[str] = (), count: str | None = None,
                 top: tuple[str, Column, Column] | None = None) -> DataFrame:
    """One row per group of the (non-null) ``keys`` columns: each of ``sums`` (name -> value, null counting
    as 0) added one row after another in the order of ``order`` (as numpy's bincount adds), the ``firsts``
    columns' values on the group's first row in that order, and with ``count`` the group's rows.

    ``top`` = (name, code, weight): the column ``name`` holds the code (an integer, negative or null: left
    out) whose weights add up (in the same order) to the most in the group, the smallest code of a tie,
    -1 when the group has no code -- the group's top category, without a second pass.

    Spark's ``sum`` adds in whatever order partitions arrive; floating point
    makes that differ in the last bits from the pandas path. Here the rows
    are hash-partitioned by the first key, sorted within partitions by the
    keys and ``order``, and folded in Python partition by partition
    (``mapInPandas``, ``np.bincount``; a group split between two Arrow
    batches is carried over into the next): one shuffle and one sort for
    every sum together.
    """
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    F = _F()
    keys, firsts = list(keys), [c for c in firsts if c not in keys]
    ords = [f"_ord{i}" for i in range(len(order))]
    extra = []
    if top is not None:
        extra = [F.coalesce(top[1].cast("long"), F.lit(-1)).alias("_topc"),
                 F.coalesce(top[2].cast("double"), F.lit(0.0)).alias("_topw")]
    sel = df.select(*keys, *firsts, *[o.alias(n) for o, n in zip(order, ords)],
                    *[F.coalesce(v.cast("double"), F.lit(0.0)).alias(n) for n, v in sums.items()], *extra)
    fields = [sel.schema[c] for c in keys + firsts]
    if count:
        fields.append(StructField(count, LongType(), False))
    fields += [StructField(n, DoubleType(), False) for n in sums]
    if top is not None:
        fields.append(StructField(top[0], LongType(), False))
    fold = _GroupFold(keys, firsts, list(sums), count, top[0] if top is not None else None)
    return fold.apply(sel, ords, StructType(fields))


class _SortedGroups:
    """A ``mapInPandas`` function over batches sorted by ``keys``: :meth:`_groups` gets whole groups only
    (a group split between two Arrow batches is carried over into the next)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def _groups(self, b: pd.DataFrame, starts: np.ndarray) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _codes(starts: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(each row's group 0 .. len(starts)-1, each group's rows) of a batch whose groups start at ``starts``."""
        sizes = np.diff(np.append(starts, n_rows))
        return np.repeat(np.arange(len(starts), dtype=np.int64), sizes), sizes

    def apply(self, df: DataFrame, order: Sequence[str], schema) -> DataFrame:
        """This fold over ``df``: hash-partitioned by the first key, sorted within partitions by the keys and
        then the ``order`` columns (which are dropped before the fold)."""
        order = list(order)
        return df.repartition(self.keys[0]).sortWithinPartitions(*self.keys, *order).drop(*order) \
            .mapInPandas(self, schema)

    def __call__(self, batches):
        carry = None
        for b in batches:
            if carry is not None:
                b = pd.concat([carry, b], ignore_index=True)
            if not len(b):
                continue
            starts = self._starts(b)
            last = int(starts[-1])
            if last:  # every group but the last is complete: the next batch may continue it
                yield self._groups(b.iloc[:last], starts[:-1])
            carry = b.iloc[last:].reset_index(drop=True)
        if carry is not None and len(carry):
            yield self._groups(carry, np.zeros(1, dtype=np.int64))

    def _starts(self, b: pd.DataFrame) -> np.ndarray:
        new = np.zeros(len(b), dtype=bool)
        new[0] = True
        for k in self.keys:
            a = b[k].to_numpy()
            new[1:] |= a[1:] != a[:-1]
        return np.flatnonzero(new)


class _GroupFold(_SortedGroups):
    """The Python side of :func:`ordered_sums`: folds sorted batches group by group."""

    def __init__(self, keys: list[str], firsts: list[str], sums: list[str], count: str | None,
                 top: str | None = None) -> None:
        super().__init__(keys)
        self.firsts, self.sums, self.count, self.top = firsts, sums, count, top

    def _groups(self, b: pd.DataFrame, starts: np.ndarray) -> pd.DataFrame:
        codes, sizes = self._codes(starts, len(b))
        out = {c: b[c].to_numpy()[starts] for c in self.keys + self.firsts}
        if self.count:
            out[self.count] = sizes.astype(np.int64)
        for s in self.sums:
            out[s] = np.bincount(codes, weights=b[s].to_numpy(np.float64), minlength=len(starts))
        if self.top:
            out[self.top] = self._top(codes, len(starts), b["_topc"].to_numpy(np.int64),
                                      b["_topw"].to_numpy(np.float64))
        return pd.DataFrame(out)

    @staticmethod
    def _top(groups: np.ndarray, n: int, code: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Per group, the code with the largest sum of weights (added in row order), the smallest on a tie."""
        best = np.full(n, -1, dtype=np.int64)
        keep = code >= 0
        if not keep.any():
            return best
        g, c = groups[keep], code[keep]
        span = int(c.max()) + 1
        pairs, inv = np.unique(g * span + c, return_inverse=True)
        tot = np.bincount(inv, weights=weight[keep], minlength=len(pairs))
        pg, pc = pairs // span, pairs % span
        order = np.lexsort((pc, -tot, pg))  # by group, then the largest total, then the smallest code
        first = np.ones(len(order), dtype=bool)
        first[1:] = pg[order][1:] != pg[order][:-1]
        best[pg[order][first]] = pc[order][first]
        return best


def _np_sum(cols: Sequence[Column]) -> Column:
    """numpy's sum of a short row of values (sequential below 8 values, its 8 partial sums up to 128)."""
    cols = list(cols)
    if len(cols) < 8:
        out = cols[0]
        for c in cols[1:]:
            out = out + c
        return out
    if len(cols) > 128:  # pragma: no cover - more than 128 categories or channels are never shown
        raise PersonalizeError("too many share columns")
    r = cols[:8]
    i = 8
    while i + 8 <= len(cols):
        r = [r[j] + cols[i + j] for j in range(8)]
        i += 8
    out = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for c in cols[i:]:
        out = out + c
    return out


def _seq() -> Column:
    """Order of lines in a Dataset (time, restored-by-a-slice last, input position)."""
    F = _F()
    return F.struct(F.col("timestamp"), F.col(RESTORED), F.col(POS))


def _seq_cols() -> list[Column]:
    """:func:`_seq` as separate columns: a sort on them is faster than on the struct."""
    F = _F()
    return [F.col("timestamp"), F.col(RESTORED), F.col(POS)]


def _ns(col: str = "timestamp") -> Column:
    F = _F()
    return F.unix_micros(F.col(col)) * F.lit(1000)


def _idiv(col: str, b: int) -> Column:
    """Floor division of the long column ``col`` by a positive integer (numpy's ``//``), in integers."""
    return _F().expr(f"(`{col}` - pmod(`{col}`, {int(b)})) div {int(b)}")


def _ts_from_ns(col: str) -> Column:
    """A timestamp (microseconds) from the long column ``col`` of nanoseconds since the epoch."""
    return _F().timestamp_micros(_idiv(col, 1000))


def _nan() -> Column:
    return _F().lit(float("nan"))


def midranks(df: DataFrame, value: str, *, ties: str = "mid", partitions: int | None = None) -> DataFrame:
    """``df`` with ``_rank``: the average rank (``ties="mid"``) or lowest rank (``"low"``) of ``value``, 1-based.

    Distributed: the distinct values are range-partitioned and counted, each
    partition's total is collected (one number per partition), and each
    value's rank is its partition's offset plus a running count inside the
    partition -- no window over the whole population in one task.
    """
    F, W = _F(), _W()
    spark = df.sparkSession
    p = partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    counts = df.groupBy(value).agg(F.count(F.lit(1)).alias("_n")).repartitionByRange(p, value) \
        .withColumn("_p", F.spark_partition_id()).persist()
    totals = sorted((r["_p"], r["t"]) for r in counts.groupBy("_p").agg(F.sum("_n").alias("t")).collect())
    offsets, acc = [], 0
    for part, t in totals:
        offsets.append((part, acc))
        acc += int(t)
    off = spark.createDataFrame(offsets, "_p int, _off long")
    w = W.partitionBy("_p").orderBy(value).rowsBetween(W.unboundedPreceding, W.currentRow)
    ranked = counts.join(F.broadcast(off), "_p").withColumn("_before", F.col("_off") + F.sum("_n").over(w) - F.col("_n"))
    rank = (F.col("_before") + (F.col("_n") + 1) / 2.0) if ties == "mid" else (F.col("_before") + 1).cast("double")
    ranked = ranked.select(value, rank.alias("_rank"))
    return df.join(ranked, value, "left")


# ---------------------------------------------------------------------------- lines and orders
class ProfileFrames:
    """The lines cut at ``as_of`` and their orders (the Spark form of ``ProfileArrays``)."""

    def __init__(self, sds: SparkDataset, as_of, *, known: DataFrame | None = None) -> None:
        """``known``: ``sds.known_at(as_of)`` when the caller has it already (shared by several features)."""
        F = _F()
        self.sds = sds
        self._planned: dict[str, Column] = {}  # order sums (plan_order_sums), computed in one pass
        self._sums: DataFrame | None = None
        self.as_of = to_timestamp(as_of, "as_of")
        self.c_ns = int(self.as_of.value)
        known = known if known is not None else sds.known_at(self.as_of)
        lines = known.withColumn("_ns", _ns()).withColumn("_buy", F.col("quantity") > 0)
        cols = sds.columns
        disc = None
        if "coupon_id" in cols:
            disc = F.col("coupon_id").isNotNull()
        if "discount" in cols:
            d = F.coalesce(F.col("discount"), F.lit(0.0)) > 0
            disc = d if disc is None else (disc | d)
        self.has_discount_flag = disc is not None
        lines = materialize(lines.withColumn("_disc", disc if disc is not None else F.lit(False)))
        if lines.limit(1).count() == 0:
            raise DataError(f"no transactions before as_of {self.as_of}", table="transactions", column="timestamp")
        with_ids = "order_id" in cols and lines.filter(F.col("order_id").isNotNull()).limit(1).count() > 0
        if with_ids:  # one order per (customer, order id); lines without an id: one per (customer, time)
            # (order id or "", time or -1): never null, and the same pair only for the same order
            oid = F.coalesce(F.col("order_id"), F.lit(""))
            ot = F.coalesce(F.when(F.col("order_id").isNull(), F.col("_ns")), F.lit(-1))
        else:  # one order per customer and second
            oid, ot = F.lit(""), _idiv("_ns", NS_SEC)
        lines = lines.withColumn("_oid", oid).withColumn("_ot", ot)
        okey = ["customer_id", "_oid", "_ot"]
        orders = ordered_sums(lines.filter("_buy"), okey, _seq_cols(),
                              {"o_amount": F.col("amount"), "o_units": F.col("quantity"), "_ndisc": F.col("_disc")},
                              firsts=["_ns", RESTORED, POS], count="o_lines")
        orders = orders.select(*okey, F.col("_ns").alias("o_ts"), "o_amount", "o_units", "o_lines",
                               (F.col("_ndisc") > 0).cast("int").alias("o_disc"),
                               F.struct(F.col("_ns"), F.col(RESTORED), F.col(POS)).alias("o_first"))
        orders = orders.withColumn("o_sec", _idiv("o_ts", NS_SEC))
        # orders sorted by (customer, second, first line): the pandas path's stable order
        w = _W().partitionBy("customer_id").orderBy("o_sec", "o_first")
        orders = orders.withColumn("o_pos", F.row_number().over(w) - 1)
        self.orders = materialize(orders)
        self.customers = self.orders.select("customer_id").distinct()
        # lines of customers with at least one order; each buy line knows its order's size
        self.lines = materialize(lines.join(self.customers, "customer_id", "left_semi")
                                 .join(self.orders.select(*okey, F.col("o_lines").alias("_size")), okey, "left")
                                 .withColumn("o_lines", F.when(F.col("_buy"), F.col("_size"))).drop("_size"))

    def plan_order_sums(self, sums: Mapping[str, Column]) -> None:
        """Announce ``sums`` (name -> value per order) that a later :meth:`order_sums` call will ask for, so
        that one pass over the orders computes them together with the others asked for."""
        for name, value in sums.items():
            if name in self._planned and str(self._planned[name]) != str(value):  # pragma: no cover - a bug
                raise PersonalizeError(f"order sum {name!r} planned twice with different values")
            self._planned[name] = value

    def order_sums(self, sums: Mapping[str, Column]) -> DataFrame:
        """Per customer, ``sums`` over the orders added in order (:func:`ordered_sums` by ``o_pos``). Every
        sum planned so far (:meth:`plan_order_sums`) is computed in the same pass, once."""
        self.plan_order_sums(sums)
        if self._sums is None or not set(sums) <= set(self._sums.columns):
            self._sums = materialize(ordered_sums(self.orders, ["customer_id"], [_F().col("o_pos")], self._planned))
        return self._sums.select("customer_id", *sums)

    def first_order_ns(self) -> int | None:
        """Time of the first order (integer nanoseconds), None without orders."""
        if not hasattr(self, "_first_ns"):
            v = self.orders.agg(_F().min("o_ts").alias("t")).first()["t"]
            self._first_ns = None if v is None else int(v)
        return self._first_ns

    def order_arrays(self, ids: np.ndarray):
        """The ``OrderArrays`` of :func:`personalize.analytics.customers.rank_purchase_models`: the orders of the
        customers ``keep`` selects (codes into the sorted ``ids``), collected in the pandas path's order
        (customer, then ``o_pos``)."""
        F = _F()
        ids = np.asarray(ids, dtype=object)

        def orders(keep):
            o = self.orders
            if keep is not None:
                chosen = self.sds.spark.createDataFrame(pd.DataFrame({"customer_id": ids[keep]}),
                                                        "customer_id string")
                o = o.join(F.broadcast(chosen), "customer_id", "left_semi")
            loc = o.select("customer_id", "o_pos", "o_ts", "o_amount").toPandas()
            codes = pd.Index(ids).get_indexer(loc["customer_id"].to_numpy(dtype=object)).astype(np.int64)
            if (codes < 0).any():  # pragma: no cover - the ids are the summary's, every customer with an order
                raise PersonalizeError("orders of customers missing from the CLV summary")
            order = np.lexsort((loc["o_pos"].to_numpy(np.int64), codes))
            return (codes[order], ids, loc["o_ts"].to_numpy(np.int64)[order] // NS_DAY,
                    loc["o_amount"].to_numpy(np.float64)[order])

        return orders

    def unpersist(self) -> None:
        for df in (self.orders, self.lines, self._sums):
            if df is not None:
                df.unpersist()


# ---------------------------------------------------------------------------- profiles
class _Shares:
    """Per-customer shares of the ``keep`` biggest labels by total weight, the rest as ``other``
    (``_share_columns`` of the pandas path). ``code`` holds the label code (-1 unknown). :attr:`sums` are
    the numerators, folded in the lines' order with the profile's other sums (:func:`ordered_sums`);
    :meth:`columns` turns them into the share columns."""

    def __init__(self, prefix: str, code: Column, labels: list, weight: Column, keep: int,
                 tot: Mapping[int, float]) -> None:
        """``tot``: the total weight of each label code over every customer's lines."""
        F = _F()
        ranked = sorted(range(len(labels)), key=lambda c: (-tot.get(c, 0.0), c))[:keep]
        self.top = [c for c in ranked if tot.get(c, 0.0) > 0]
        self.prefix, self.labels = prefix, labels
        self.slots = [f"_{prefix}m{j}" for j in range(len(self.top) + 1)]
        in_top = code.isin(self.top) if self.top else F.lit(False)
        self.sums = {name: F.when(code == c, weight).otherwise(0.0) for name, c in zip(self.slots, self.top)}
        self.sums[self.slots[-1]] = F.when(~in_top, weight).otherwise(0.0)

    def columns(self, mat: DataFrame) -> tuple[list[Column], list[str]]:
        """(share columns, their names) from ``mat``, which holds :attr:`sums`."""
        F = _F()
        den = _np_sum([F.col(c) for c in self.slots])
        cols, names = [], []
        for slot, c in zip(self.slots, self.top):
            names.append(f"{self.prefix}{self.labels[c]}")
            cols.append(F.when(den > 0, F.col(slot) / den).otherwise(_nan()).alias(names[-1]))
        other = self.slots[-1]
        if mat.filter(F.col(other) != 0).limit(1).count():
            names.append(f"{self.prefix}other")
            cols.append(F.when(den > 0, F.col(other) / den).otherwise(_nan()).alias(names[-1]))
        return cols, names


def profiles(sds: SparkDataset, as_of, *, top_categories: int = 5, trend_days: float = 90.0,
             frames: ProfileFrames | None = None) -> DataFrame:
    """One row per customer with an order strictly before ``as_of``: the columns of
    :func:`personalize.analytics.profiles`, plus ``customer_id`` (a Spark DataFrame)."""
    F, W = _F(), _W()
    if trend_days <= 0:
        raise DataError(f"trend_days must be > 0, got {trend_days}")
    a = frames or ProfileFrames(sds, as_of)
    c_ns = a.c_ns
    o = a.orders
    w = W.partitionBy("customer_id").orderBy("o_pos")
    oday = _idiv("o_ts", NS_DAY)
    o = o.withColumn("_day", oday).withColumn("_gap", F.col("_day") - F.lag("_day").over(w))
    gm = F.col("_gap") > 0
    per_order = o.groupBy("customer_id").agg(
        F.min("o_ts").alias("_first"), F.max("o_ts").alias("_last"), F.count(F.lit(1)).alias("orders"),
        F.sum("o_lines").alias("lines"),
        F.sum(F.when(gm, 1).otherwise(0)).alias("_ng"),
        F.sum(F.when(gm, F.col("_gap")).otherwise(0)).cast("double").alias("_s1"),
        F.sum(F.when(gm, F.col("_gap") * F.col("_gap")).otherwise(0)).cast("double").alias("_s2"),
        F.sum(F.col("o_disc")).cast("double").alias("_ndisc")) \
        .join(a.order_sums(_profile_order_sums()), "customer_id")
    tw = int(trend_days * NS_DAY)
    ns = F.col("_ns")
    recent = ns >= F.lit(c_ns - tw)
    prev = (ns >= F.lit(c_ns - 2 * tw)) & ~recent
    amount = F.col("amount")
    sums = {"monetary": amount, "spend_recent": F.when(recent, amount).otherwise(0.0),
            "spend_previous": F.when(prev, amount).otherwise(0.0)}
    has_disc_col = "discount" in sds.columns
    if has_disc_col:
        sums.update(_dsum=F.col("discount"), _gross=F.when(F.col("_buy"), amount).otherwise(0.0))
    # category and channel shares: their numerators are folded with the sums above, in one pass
    lines = a.lines
    cat = chan = None
    cat_of = None
    cat_labels: list = []
    items = sds.items
    if items is not None and "category" in items.columns and top_categories >= 0:
        cats = items.filter(F.col("category").isNotNull()).groupBy("category").agg(F.min(POS).alias("_f")) \
            .orderBy("_f").collect()
        cat_labels = [r["category"] for r in cats]
        if cat_labels:
            cat_of = sds.spark.createDataFrame([(c, i) for i, c in enumerate(cat_labels)], "category string, _cc int")
            item_code = items.select("item_id", "category").join(F.broadcast(cat_of), "category").select("item_id", "_cc")
            lines = lines.join(item_code, "item_id", "left").withColumn("_cc", F.coalesce("_cc", F.lit(-1)))
    has_chan = "channel" in sds.columns
    cat_w = F.when(F.col("_buy"), amount).otherwise(0.0)
    chan_w = F.when(F.col("_buy"), F.lit(1.0) / F.col("o_lines")).otherwise(0.0)
    rows = []
    if cat_labels or has_chan:  # every label's total and the channels' order of first use: one aggregation
        keys, aggs = [], []
        if cat_labels:
            keys.append("_cc")
            aggs.append(F.sum(cat_w).alias("_tc"))
        if has_chan:
            keys.append("channel")
            aggs += [F.min(F.when(F.col("channel").isNotNull(), _seq())).alias("_f"), F.sum(chan_w).alias("_th")]
        rows = lines.groupBy(*keys).agg(*aggs).collect()
    if cat_labels:
        tot: dict[int, float] = {}
        for r in rows:
            if r["_cc"] >= 0:
                tot[r["_cc"]] = tot.get(r["_cc"], 0.0) + float(r["_tc"])
        cat = _Shares("share_cat__", F.col("_cc"), cat_labels, cat_w, top_categories, tot)
        sums.update(cat.sums)
    if has_chan:
        first: dict = {}
        for r in rows:
            if r["channel"] is not None and (r["channel"] not in first or r["_f"] < first[r["channel"]]):
                first[r["channel"]] = r["_f"]
        labels = sorted(first, key=first.__getitem__)
        if labels:
            code = {c: i for i, c in enumerate(labels)}
            tot = {}
            for r in rows:
                if r["channel"] is not None:
                    tot[code[r["channel"]]] = tot.get(code[r["channel"]], 0.0) + float(r["_th"])
            code_of = sds.spark.createDataFrame(list(code.items()), "channel string, _ch int")
            lines = lines.join(F.broadcast(code_of), "channel", "left").withColumn("_ch", F.coalesce("_ch", F.lit(-1)))
            chan = _Shares("share_channel__", F.col("_ch"), labels, chan_w, MAX_CHANNELS, tot)
            sums.update(chan.sums)
    # the top category (most spend, the first category on a tie) in the same pass
    top = ("_top", F.when(F.col("_buy"), F.col("_cc")), amount) if cat is not None else None
    mat = materialize(ordered_sums(lines, ["customer_id"], _seq_cols(), sums, top=top))
    p = per_order.join(mat, "customer_id")
    n_orders = F.col("orders").cast("double")
    mean = F.col("_s1") / F.col("_ng")
    var = F.col("_s2") / F.col("_ng") - mean * mean
    tot = F.col("spend_recent") + F.col("spend_previous")
    trend = F.when(F.abs(tot) > 0, (F.col("spend_recent") - F.col("spend_previous")) / F.abs(tot)).otherwise(0.0)
    cols = [
        _ts_from_ns("_first").alias("first_purchase"),
        _ts_from_ns("_last").alias("last_purchase"),
        ((F.lit(c_ns) - F.col("_last")).cast("double") / float(NS_DAY)).alias("recency_days"),
        ((F.lit(c_ns) - F.col("_first")).cast("double") / float(NS_DAY)).alias("tenure_days"),
        F.col("orders"), F.col("lines"), (F.col("_ng") + 1).alias("purchase_days"), F.col("monetary"),
        (F.col("monetary") / n_orders).alias("aov"), (F.col("_units") / n_orders).alias("items_per_order"),
        F.when(F.col("_ng") > 0, mean).otherwise(_nan()).alias("ipt_mean_days"),
        F.when(F.col("_ng") > 1, F.sqrt(F.greatest(var, F.lit(0.0)))).otherwise(_nan()).alias("ipt_std_days"),
        F.col("spend_recent"), F.col("spend_previous"),
        F.least(F.greatest(trend, F.lit(-1.0)), F.lit(1.0)).alias("trend"),
        ((F.col("_ndisc") / n_orders) if a.has_discount_flag else _nan()).alias("discount_share"),
        (F.when(F.col("_gross") > 0, F.col("_dsum") / F.col("_gross")).otherwise(_nan()) if has_disc_col
         else _nan()).alias("discount_rate"),
    ]
    cat_cols, cat_names = cat.columns(mat) if cat is not None else ([], [])
    chan_cols, chan_names = chan.columns(mat) if chan is not None else ([], [])
    p = p.select("customer_id", "_units", *cols, *cat_cols, *chan_cols)
    # returns before as_of (what cleaning netted away), over the units bought net of them
    r = ordered_sums(sds.returns.filter(F.col("timestamp") < F.lit(a.as_of)), ["customer_id"],
                     [F.col("timestamp"), F.col(POS)], {"_r": F.col("quantity")})
    p = p.join(r, "customer_id", "left").withColumn("_r", F.coalesce("_r", F.lit(0.0)))
    gross = F.col("_units") + F.col("_r")
    p = p.withColumn("return_rate", F.when(gross > 0, F.col("_r") / gross).otherwise(_nan())).drop("_r", "_units")
    names = [c for c in p.columns if c not in cat_names + chan_names] + cat_names
    if cat is not None and mat.filter(F.col("_top") >= 0).limit(1).count():
        best = mat.select("customer_id", F.col("_top").cast("int").alias("_cc")).join(F.broadcast(cat_of), "_cc")
        p = p.join(best.select("customer_id", F.col("category").alias("top_category")), "customer_id", "left")
        names.append("top_category")
    names += chan_names
    cust = sds.customers
    if cust is not None and "birth_date" in cust.columns:
        p = p.join(cust.select("customer_id", "birth_date"), "customer_id", "left")
        p = _birthday(p, a.as_of)
        names += ["days_to_birthday", "age_years"]
    return p.select(*names)


def _profile_order_sums() -> dict[str, Column]:
    """The per-order sums :func:`profiles` takes (:meth:`ProfileFrames.order_sums`)."""
    return {"_units": _F().col("o_units")}


def _birthday(p: DataFrame, as_of: pd.Timestamp) -> DataFrame:
    """days_to_birthday and age_years as of ``as_of`` (29 February counts as 28 February in other years)."""
    F = _F()
    today = as_of.normalize()
    b = F.col("birth_date")
    known = b.isNotNull() & (b < F.lit(as_of))
    month, day = F.month(b), F.dayofmonth(b)

    def bday(year: Column) -> Column:
        leap = ((year % 4) == 0) & (((year % 100) != 0) | ((year % 400) == 0))
        d = F.when((month == 2) & (day == 29) & ~leap, F.lit(28)).otherwise(day)
        return F.make_date(year, month, d)

    t = F.lit(today.date())
    this = bday(F.lit(today.year))
    nxt = F.when(this < t, bday(F.lit(today.year + 1))).otherwise(this)
    days = F.datediff(nxt, t).cast("double")
    age = (F.lit(today.year) - F.year(b)).cast("double") - F.when(this > t, 1.0).otherwise(0.0)
    return p.withColumn("days_to_birthday", F.when(known, days).otherwise(_nan())) \
        .withColumn("age_years", F.when(known, age).otherwise(_nan())).drop("birth_date")


# ---------------------------------------------------------------------------- RFM, segments, lifecycle
_RFM_COLS = {"R": "recency_days", "F": "orders", "M": "monetary"}


def rfm_scores(prof: DataFrame, *, thresholds: Mapping[str, Sequence[float]] | None = None,
               ties: str = "mid") -> DataFrame:
    """``prof`` with R, F, M (1..5), FM and rfm (:func:`personalize.analytics.rfm_scores`)."""
    F = _F()
    if ties not in ("mid", "low"):
        raise PersonalizeError(f"ties must be 'mid' or 'low', got {ties!r}")
    thresholds = dict(thresholds or {})
    unknown = set(thresholds) - set(_RFM_COLS.values())
    if unknown:
        raise PersonalizeError(f"RFM thresholds for unknown column(s) {sorted(unknown)}; use "
                               f"{sorted(_RFM_COLS.values())}")
    n = prof.count()
    out = prof
    for letter, col in _RFM_COLS.items():
        better_high = letter != "R"
        v = F.col(col).cast("double")
        if col in thresholds:
            c = np.asarray(thresholds[col], dtype=np.float64)
            _threshold_score(np.zeros(0), c, better_high, col)  # validates the cut points
            if better_high:
                s = F.lit(1)
                for cut in c:
                    s = s + F.when(v >= F.lit(float(cut)), 1).otherwise(0)
            else:
                s = F.lit(5)
                for cut in c:
                    s = s - F.when(v > F.lit(float(cut)), 1).otherwise(0)
            out = out.withColumn(letter, s.cast("tinyint"))
            continue
        key = f"_v{letter}"
        out = midranks(out.withColumn(key, v if better_high else -v), key, ties=ties)
        pos = F.col("_rank") - (0.5 if ties == "mid" else 1.0)
        s = F.least(F.greatest(F.lit(1.0) + F.floor(F.lit(5.0) * pos / F.lit(float(n))), F.lit(1.0)), F.lit(5.0))
        out = out.withColumn(letter, s.cast("tinyint")).drop("_rank", key)
    fm = F.floor((F.col("F").cast("int") + F.col("M").cast("int")) / 2.0 + 0.5).cast("tinyint")
    return out.withColumn("FM", fm).withColumn(
        "rfm", F.concat(F.col("R").cast("string"), F.col("F").cast("string"), F.col("M").cast("string")))


def _segments(df: DataFrame, rules: Sequence[SegmentRule], default: str = "Other") -> DataFrame:
    F = _F()
    if not rules:
        raise PersonalizeError("segment rules are empty")
    seg = F.lit(default)
    for r in reversed(list(rules)):
        m = F.lit(True)
        for key in ("R", "F", "M", "FM"):
            rng = getattr(r, key)
            if rng is not None:
                m = m & (F.col(key) >= rng[0]) & (F.col(key) <= rng[1])
        if r.orders is not None:
            m = m & (F.col("orders") >= r.orders[0]) & (F.col("orders") <= r.orders[1])
        seg = F.when(m, F.lit(r.name)).otherwise(seg)
    return df.withColumn("segment", seg)


def _median(df: DataFrame, col: str) -> float | None:
    """numpy's median of a column (exact: the middle value(s) of a distributed sort)."""
    n = df.count()
    if n == 0:
        return None
    want = sorted({(n - 1) // 2, n // 2})
    got = dict(df.select(col).orderBy(col).rdd.zipWithIndex().filter(lambda t: t[1] in want)
               .map(lambda t: (t[1], t[0][0])).collect())
    return float(got[want[0]]) if len(want) == 1 else (got[want[0]] + got[want[1]]) / 2


def _lifecycle(df: DataFrame, cfg: LifecycleConfig) -> tuple[DataFrame, float]:
    F = _F()
    gaps = F.greatest(F.col("purchase_days").cast("double") - 1.0, F.lit(0.0))
    has = gaps > 0
    if cfg.default_gap_days is not None:
        default = float(cfg.default_gap_days)
    else:
        med = _median(df.filter(has), "ipt_mean_days")
        default = float(cfg.fallback_gap_days) if med is None else med
    own0 = F.when(has, F.col("ipt_mean_days")).otherwise(0.0)
    denom = gaps + F.lit(float(cfg.prior_weight))
    gap = F.when(denom > 0, (gaps * own0 + F.lit(float(cfg.prior_weight)) * F.lit(default)) / denom) \
        .otherwise(F.lit(default))
    gap = F.greatest(gap, F.lit(float(cfg.min_gap_days)))
    df = df.withColumn("expected_gap_days", gap).withColumn(
        "rhythm_ratio", F.col("recency_days") / F.col("expected_gap_days"))
    ratio, ten = F.col("rhythm_ratio"), F.col("tenure_days")
    st = F.when(ten <= cfg.new_days, LIFECYCLE_STAGES[0]).when(ratio <= cfg.at_risk_ratio, LIFECYCLE_STAGES[1]) \
        .when(ratio <= cfg.lapsed_ratio, LIFECYCLE_STAGES[2]).when(ratio <= cfg.churned_ratio, LIFECYCLE_STAGES[3]) \
        .otherwise(LIFECYCLE_STAGES[4])
    return df.withColumn("lifecycle", st), default


# ---------------------------------------------------------------------------- tiers
def _qualifies(tier, spend: Column, orders: Column, mode: str) -> Column:
    F = _F()
    tests = []
    if tier.min_spend is not None:
        tests.append(spend >= F.lit(tier.min_spend - 1e-9))
    if tier.min_orders is not None:
        tests.append(orders >= F.lit(tier.min_orders))
    if not tests:
        return F.lit(True)
    out = tests[0]
    for t in tests[1:]:
        out = (out | t) if mode == "any" else (out & t)
    return out


def _in_tier_window(a: ProfileFrames, cfg: TierConfig) -> Column:
    """Orders inside the tier window that ends at ``as_of``."""
    w_sec = int(round(cfg.window_days * 86400))
    return _F().col("o_sec") > _F().lit(a.as_of.value // NS_SEC - w_sec)


def _tier_order_sums(a: ProfileFrames, cfg: TierConfig) -> dict[str, Column]:
    """The per-order sums :func:`_tiers` takes."""
    F = _F()
    return {"t12m_spend": F.when(_in_tier_window(a, cfg), F.col("o_amount")).otherwise(0.0)}


def _tiers(a: ProfileFrames, cfg: TierConfig) -> DataFrame:
    """Current tier, since when, trailing spend / orders and the distance to the next tier
    (:func:`personalize.analytics.membership_tiers`)."""
    F, W = _F(), _W()
    w_sec = int(round(cfg.window_days * 86400))
    o = a.orders
    by_pos = W.partitionBy("customer_id").orderBy("o_pos")
    before_win = W.partitionBy("customer_id").orderBy("o_sec").rangeBetween(W.unboundedPreceding, -w_sec)
    # orders and spend in the trailing window ending at each order: running totals by position minus
    # the totals of the orders at least a window older (all of which come before it)
    o = o.withColumn("_n_old", F.count(F.lit(1)).over(before_win)) \
        .withColumn("_s_old", F.coalesce(F.sum("o_amount").over(before_win), F.lit(0.0))) \
        .withColumn("_n_after", F.col("o_pos") + 1 - F.col("_n_old")) \
        .withColumn("_s_after", F.sum("o_amount").over(by_pos.rowsBetween(W.unboundedPreceding, W.currentRow))
                    - F.col("_s_old"))
    o = o.withColumn("_s_before", F.col("_s_after") - F.col("o_amount")) \
        .withColumn("_n_before", F.col("_n_after") - 1).withColumn("_first", F.col("o_pos") == 0)
    in_now = _in_tier_window(a, cfg)
    ups = []
    for k, tier in enumerate(cfg.tiers):
        up = _qualifies(tier, F.col("_s_after"), F.col("_n_after"), cfg.mode) & \
            ~(_qualifies(tier, F.col("_s_before"), F.col("_n_before"), cfg.mode) & ~F.col("_first"))
        ups.append(F.max(F.when(up, F.struct(F.col("o_pos"), F.col("o_ts").alias("ts")))).alias(f"_up{k}"))
    agg = o.groupBy("customer_id").agg(F.sum(F.when(in_now, 1).otherwise(0)).cast("long").alias("t12m_orders"), *ups) \
        .join(a.order_sums(_tier_order_sums(a, cfg)), "customer_id")
    s_now, n_now = F.col("t12m_spend"), F.col("t12m_orders")
    level = F.lit(-1)
    for k, tier in enumerate(cfg.tiers):
        level = F.when(_qualifies(tier, s_now, n_now, cfg.mode), F.lit(k)).otherwise(level)
    agg = agg.withColumn("tier_level", level.cast("long"))
    since = F.lit(None).cast("long")
    name = F.lit(None).cast("string")
    nxt_name = F.lit(None).cast("string")
    spend_gap = _nan()
    order_gap = _nan()
    for k, tier in enumerate(cfg.tiers):
        is_k = F.col("tier_level") == k
        since = F.when(is_k, F.col(f"_up{k}.ts")).otherwise(since)
        name = F.when(is_k, F.lit(tier.name)).otherwise(name)
    for k, tier in enumerate(cfg.tiers):
        is_next = F.col("tier_level") + 1 == k
        nxt_name = F.when(is_next, F.lit(tier.name)).otherwise(nxt_name)
        if tier.min_spend is not None:
            spend_gap = F.when(is_next, F.greatest(F.lit(float(tier.min_spend)) - s_now, F.lit(0.0))).otherwise(spend_gap)
        if tier.min_orders is not None:
            order_gap = F.when(is_next, F.greatest(F.lit(tier.min_orders) - n_now, F.lit(0)).cast("double")) \
                .otherwise(order_gap)
    agg = agg.withColumn("_since", since)
    return agg.select("customer_id", name.alias("tier"), "tier_level", _ts_from_ns("_since").alias("tier_since"), "t12m_spend", "t12m_orders",
                      nxt_name.alias("next_tier"), spend_gap.alias("spend_to_next_tier"),
                      order_gap.alias("orders_to_next_tier"))


# ---------------------------------------------------------------------------- CLV
class _ClvSummary(_SortedGroups):
    """The Python side of :func:`_clv_summary`: the pandas path's ``summary_from_arrays`` on whole customers."""

    def __init__(self, cal_day: int) -> None:
        super().__init__(["customer_id"])
        self.cal_day = cal_day

    def _groups(self, b: pd.DataFrame, starts: np.ndarray) -> pd.DataFrame:
        from personalize.analytics.clv import summary_from_arrays

        codes, _ = self._codes(starts, len(b))
        s = summary_from_arrays(codes, b["customer_id"].to_numpy(dtype=object)[starts], b["_day"].to_numpy(np.int64),
                                b["o_amount"].to_numpy(np.float64), cal_day=self.cal_day, time_unit="W")
        return s.drop(columns="first_purchase").reset_index()


def _clv_summary(a: ProfileFrames) -> DataFrame:
    """The BG/NBD calibration summary in weeks: each partition's whole customers, their orders in order,
    through the pandas path's ``summary_from_arrays`` (``time_unit="W"``)."""
    F = _F()
    cal_day = (a.as_of.value - 1) // NS_DAY
    o = a.orders.select("customer_id", _idiv("o_ts", NS_DAY).alias("_day"), "o_amount", "o_pos") \
        .filter(F.col("_day") <= cal_day)
    schema = "customer_id string, frequency long, recency double, T double, monetary_value double"
    return _ClvSummary(int(cal_day)).apply(o, ["o_pos"], schema)


def _clv_scores(summary: DataFrame, model_name: str, bg_state: dict, gg_state: dict, horizon_days: float,
                annual_discount_rate: float) -> DataFrame:
    """p_alive, expected_purchases, expected_spend and clv for every row of ``summary``, in partitions
    (``mapInPandas`` with the fitted models' state; ``model_name`` names the purchase model's class in
    ``PURCHASE_MODELS``), by :func:`personalize.analytics.customers.clv_scores`."""
    from personalize.analytics.clv import PURCHASE_MODELS, GammaGammaModel
    from personalize.analytics.customers import clv_scores

    def score(batches):
        bg = PURCHASE_MODELS[model_name].from_dict(bg_state)
        gg = GammaGammaModel.from_dict(gg_state)
        for b in batches:
            out = clv_scores(bg, gg, b.set_index("customer_id"), horizon_days=horizon_days,
                             annual_discount_rate=annual_discount_rate)
            yield pd.DataFrame({"customer_id": b["customer_id"].to_numpy(),
                                **{k: np.asarray(v, dtype=np.float64) for k, v in out.items()}})

    schema = "customer_id string, p_alive double, expected_purchases double, expected_spend double, clv double"
    return summary.mapInPandas(score, schema)


def _simple_clv_periods(a: ProfileFrames, period: float) -> tuple[Column, Column]:
    """(orders in the last period, orders in the one before) of :func:`_simple_clv`."""
    F = _F()
    p_ns = int(period * NS_DAY)
    last = F.col("o_ts") >= F.lit(a.c_ns - p_ns)
    return last, (F.col("o_ts") >= F.lit(a.c_ns - 2 * p_ns)) & ~last


def _simple_clv_order_sums(a: ProfileFrames, period: float) -> dict[str, Column]:
    """The per-order sums :func:`_simple_clv` takes with a period of ``period`` days."""
    F = _F()
    last, _ = _simple_clv_periods(a, period)
    return {"_val": F.when(last, F.col("o_amount")).otherwise(0.0), "_all": F.col("o_amount")}


def _simple_clv(a: ProfileFrames, period_days: float) -> tuple[DataFrame, dict]:
    """(``clv_simple`` per customer, the attrs of :func:`personalize.analytics.simple_clv`) with one period
    (shortened as the pandas path does, by the same functions); raises DataError as it does."""
    from personalize.analytics.clv import simple_clv_factor, simple_clv_no_retention, simple_clv_period

    F = _F()
    period, history_days, note = simple_clv_period(period_days, as_of=a.as_of, first_ns=a.first_order_ns())
    last, prev = _simple_clv_periods(a, period)
    per = a.orders.groupBy("customer_id").agg(
        F.sum(F.when(last, 1).otherwise(0)).alias("_f"), F.count(F.lit(1)).alias("_n"),
        F.max(F.when(prev, 1).otherwise(0)).alias("_prev")) \
        .join(a.order_sums(_simple_clv_order_sums(a, period)), "customer_id").persist()
    r = per.agg(F.sum("_prev").alias("np"), F.sum(F.when((F.col("_prev") == 1) & (F.col("_f") > 0), 1)
                                                 .otherwise(0)).alias("kept")).collect()[0]
    n_prev = int(r["np"] or 0)
    if n_prev == 0:
        per.unpersist()
        raise simple_clv_no_retention(period, a.as_of)
    retention = float(int(r["kept"]) / n_prev)
    factor = simple_clv_factor(retention, period, period_days)  # one period, no discount (customer_view's)
    aov = F.when(F.col("_f") > 0, F.col("_val") / F.greatest(F.col("_f"), F.lit(1)).cast("double")) \
        .otherwise(F.col("_all") / F.greatest(F.col("_n"), F.lit(1)).cast("double"))
    info = {"retention": retention, "retained_of": n_prev, "period_days": period,
            "requested_period_days": float(period_days), "history_days": history_days}
    if note:
        info["note"] = note
    return per.select("customer_id", (F.col("_f").cast("double") * aov * F.lit(1.0) * F.lit(factor))
                      .alias("clv_simple")), info


def _add_clv(view: DataFrame, attrs: dict, a: ProfileFrames, *, clv_model: str, clv_horizon_days: float,
             annual_discount_rate: float, simple_period_days: float) -> DataFrame:
    """``view`` with the CLV columns of the pandas path (p_alive, expected_purchases, expected_spend, clv,
    clv_simple, clv_status, clv_note) and their attrs, by the steps of
    :func:`personalize.analytics.customers._add_clv`: the purchase models ranked on the holdout and fitted on
    the driver from the collected summary, scored in partitions."""
    from personalize.analytics import customers as C

    F = _F()
    notes: list[str] = []
    status = "unavailable"
    try:
        cal_day = (a.as_of.value - 1) // NS_DAY
        summary = _clv_summary(a).persist()
        local = summary.orderBy("customer_id").toPandas().set_index("customer_id")
        first_ns = a.first_order_ns()
        ids = np.asarray(local.index, dtype=object)
        ranking, selection = C.rank_purchase_models(
            clv_model, cal_day=cal_day, first_day=(first_ns // NS_DAY) if first_ns is not None else cal_day,
            n_customers=len(ids), orders=a.order_arrays(ids))
        attrs["clv_selection"] = selection
        bg = C.fit_ranked_purchase_model(local, ranking, selection)
        gg, left_out = C.fit_spend(local)
        scored = view.join(_clv_scores(summary, bg.model_name, bg.to_dict(), gg.to_dict(), clv_horizon_days,
                                       annual_discount_rate), "customer_id", "left")
        alive = F.col("p_alive")
        status, fit_notes, withhold = C.clv_fit_status(
            bg, gg, ranking,
            lambda: scored.filter((F.col("segment") == "Lost") & ~F.isnan(alive) & (alive > 0.95)).count())
        notes += fit_notes
        view = scored.withColumn("p_alive", _nan()) if withhold else scored
        C.clv_model_attrs(attrs, bg, gg, left_out, horizon_days=clv_horizon_days,
                          annual_discount_rate=annual_discount_rate)
    except (ConvergenceError, DataError) as exc:
        C.clv_unavailable(attrs, notes, exc, stacklevel=3)
        for c in ("p_alive", "expected_purchases", "expected_spend", "clv"):
            view = view.withColumn(c, _nan())
    try:
        simple, info = _simple_clv(a, simple_period_days)
        view = view.join(simple, "customer_id", "left")
        C.simple_clv_attrs(attrs, notes, info)
    except DataError as exc:
        C.simple_clv_failed(attrs, notes, exc)
        view = view.withColumn("clv_simple", _nan())
    note = C.clv_outcome(attrs, status, notes)
    return view.withColumn("clv_status", F.lit(status)).withColumn("clv_note", F.lit(note).cast("string"))


# ---------------------------------------------------------------------------- the customer view
def customer_view(sds: SparkDataset, as_of, *, rfm_thresholds: dict | None = None, rfm_ties: str = "mid",
                  segment_rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES,
                  lifecycle: LifecycleConfig | None = None, tiers: TierConfig | None = None, clv: bool = True,
                  clv_horizon_days: float = 365.0, annual_discount_rate: float = 0.10,
                  simple_period_days: float = 365.0, clv_model: str = "auto",
                  known: DataFrame | None = None) -> tuple[DataFrame, dict]:
    """(Spark DataFrame, attrs): :func:`personalize.analytics.customer_view` on Spark, one row per customer
    who bought before ``as_of``, with ``customer_id`` as a column; ``attrs`` as the pandas frame's (the CLV
    model selection, status and notes by the same functions). ``known``: ``sds.known_at(as_of)`` when the
    caller has it already (materialized; the churn scoring features take the same lines)."""
    from personalize.analytics.clv import simple_clv_period

    a = ProfileFrames(sds, as_of, known=known)
    tiers = tiers or TierConfig()
    # the per-customer order sums of profiles, tiers and simple CLV: one pass over the orders
    a.plan_order_sums(_profile_order_sums())
    a.plan_order_sums(_tier_order_sums(a, tiers))
    if clv:
        try:
            period = simple_clv_period(simple_period_days, as_of=a.as_of, first_ns=a.first_order_ns())[0]
            a.plan_order_sums(_simple_clv_order_sums(a, period))
        except DataError:  # _simple_clv says why, in the attrs
            pass
    prof = materialize(profiles(sds, as_of, frames=a))
    order = list(prof.columns)
    view = rfm_scores(prof, thresholds=rfm_thresholds, ties=rfm_ties)
    view = _segments(view, segment_rules)
    view, default_gap = _lifecycle(view, lifecycle or LifecycleConfig())
    view = view.join(_tiers(a, tiers), "customer_id", "left")
    attrs: dict[str, Any] = {"as_of": a.as_of.isoformat(), "default_gap_days": default_gap}
    cols = order + ["R", "F", "M", "FM", "rfm", "segment", "expected_gap_days", "rhythm_ratio", "lifecycle",
                    "tier", "tier_level", "tier_since", "t12m_spend", "t12m_orders", "next_tier",
                    "spend_to_next_tier", "orders_to_next_tier"]
    if clv:
        view = _add_clv(view, attrs, a, clv_model=clv_model, clv_horizon_days=clv_horizon_days,
                        annual_discount_rate=annual_discount_rate, simple_period_days=simple_period_days)
        cols += ["p_alive", "expected_purchases", "expected_spend", "clv", "clv_simple", "clv_status", "clv_note"]
    cust = sds.customers
    if cust is not None:
        extra = [c for c in ("region", "consent_email", "consent_sms", "consent_personalization")
                 if c in cust.columns]
        if extra:
            view = view.join(cust.select("customer_id", *extra), "customer_id", "left")
            cols += extra
    return view.select(*cols), attrs


# ---------------------------------------------------------------------------- churn snapshots
def collect_view(view: DataFrame) -> pd.DataFrame:
    """A :func:`customer_view` collected to pandas with the pandas path's dtypes, indexed like it by customer
    id (:func:`view_dtypes`)."""
    return view_dtypes(view.toPandas()).set_index("customer_id").sort_index()


def view_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """The pandas path's dtypes on a customer view collected from Spark, in place: timestamps in
    nanoseconds (Spark has microseconds), ``clv_status`` and ``clv_note`` categorical."""
    from personalize.analytics.customers import clv_dtypes

    for c in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[c].dtype) and frame[c].dtype != "datetime64[ns]":
            frame[c] = frame[c].astype("datetime64[ns]")
    return clv_dtypes(frame)


class _ChurnDays(_SortedGroups):
    """The Python side of :func:`churn_features`: the pandas path's purchase-day features
    (:func:`personalize.churn.features.purchase_day_columns`) of whole customers, batch by batch."""

    def __init__(self, cut_f: float, end_day: int, windows: tuple[int, ...], with_items: bool,
                 names: list[str]) -> None:
        super().__init__(["customer_id"])
        self.cut_f, self.end_day, self.windows, self.with_items, self.names = cut_f, end_day, windows, with_items, names

    def _groups(self, b: pd.DataFrame, starts: np.ndarray) -> pd.DataFrame:
        from personalize.churn.features import purchase_day_columns

        n = len(starts)
        codes, _ = self._codes(starts, len(b))
        cols, (purchases, first_d, last_d, _, _) = purchase_day_columns(
            codes, n, b["_day"].to_numpy(np.int64), b["amount"].to_numpy(np.float64),
            b["quantity"].to_numpy(np.float64), self.cut_f, self.end_day, self.windows,
            b["item_id"].to_numpy(dtype=object) if self.with_items else None)
        out = {"customer_id": b["customer_id"].to_numpy()[starts], "_n": purchases.astype(np.int64),
               "_fd": np.asarray(first_d, np.int64), "_ld": np.asarray(last_d, np.int64)}
        out.update({c: np.asarray(cols[c], dtype=np.float64) for c in self.names})
        return pd.DataFrame(out)


def churn_features(sds: SparkDataset, cutoff, *, horizon_days: float = 90.0,
                   windows: tuple[int, ...] = DEFAULT_WINDOWS, bgnbd: bool = True,
                   known: DataFrame | None = None) -> tuple[DataFrame, dict | None]:
    """(Spark DataFrame, BG/NBD params or None): :func:`personalize.churn.churn_features` at ``cutoff``,
    one row per customer with a line before it, ``customer_id`` plus the float64 feature columns.
    ``known``: the materialized ``sds.known_at(cutoff)`` when the caller has it already."""
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    from personalize.churn.features import purchase_day_columns

    F = _F()
    cut = to_timestamp(cutoff, "cutoff")
    if horizon_days <= 0:
        raise DataError(f"horizon_days must be > 0, got {horizon_days}")
    windows = tuple(sorted(int(w) for w in windows))
    if any(w <= 0 for w in windows):
        raise DataError(f"windows must be positive numbers of days, got {windows}")
    lines = known if known is not None else materialize(sds.known_at(cut))
    if lines.limit(1).count() == 0:
        raise DataError(f"no transactions before cutoff {cut}", table="transactions", column="timestamp")
    cut_f = cut.value / NS_DAY
    end_day = int(math.ceil(cut_f)) - 1
    with_items = lines.select("item_id").distinct().limit(2).count() > 1
    # the column names, from the pandas path's own function on one line
    names = list(purchase_day_columns(np.zeros(1, np.int64), 1, np.array([end_day]), np.ones(1), np.ones(1), cut_f,
                                      end_day, windows, np.array(["i"], dtype=object) if with_items else None)[0])
    # every customer's lines in one partition, in time order: the features by the pandas path's function
    # (time order implies day order, so its per-day and per-customer sums add as the pandas path's do)
    sel = lines.withColumn("_ns", _ns()).select(
        "customer_id", _idiv("_ns", NS_DAY).alias("_day"), F.col("amount").cast("double"),
        F.col("quantity").cast("double"), *(["item_id"] if with_items else []), *_seq_cols())
    schema = StructType([StructField("customer_id", sel.schema["customer_id"].dataType, False),
                         *[StructField(c, LongType(), False) for c in ("_n", "_fd", "_ld")],
                         *[StructField(c, DoubleType(), True) for c in names]])
    feats = _ChurnDays(cut_f, end_day, windows, with_items, names).apply(sel, ["timestamp", RESTORED, POS], schema)
    params = None
    if bgnbd:
        feats, params = _bgnbd_columns(feats, end_day, horizon_days / 7.0)
        names += ["bgnbd_p_alive", "bgnbd_expected", "bgnbd_p_none"]
    return feats.select("customer_id", *names), params


def _bgnbd_columns(feats: DataFrame, end_day: int, horizon_weeks: float) -> tuple[DataFrame, dict | None]:
    """BG/NBD fitted on the driver from (x, t_x, T) of every customer (in id order, as the pandas path),
    P(alive), expected purchases and P(no purchase) scored in partitions."""
    from personalize.analytics.clv import BGNBDModel
    from personalize.churn.features import bgnbd_p_none

    F = _F()
    f = feats.withColumn("_x", F.col("_n").cast("double") - 1.0) \
        .withColumn("_tx", (F.col("_ld") - F.col("_fd")).cast("double") / 7.0) \
        .withColumn("_T", (F.lit(end_day) - F.col("_fd")).cast("double") / 7.0).persist()
    local = f.select("customer_id", "_x", "_tx", "_T").orderBy("customer_id").toPandas()
    x, tx, T = (local[c].to_numpy(np.float64) for c in ("_x", "_tx", "_T"))
    nan_cols = {"bgnbd_p_alive": _nan(), "bgnbd_expected": _nan(), "bgnbd_p_none": _nan()}
    if not len(x) or not (x > 0).any():
        return f.withColumns(nan_cols), None
    try:
        model = BGNBDModel().fit(frequency=x, recency=tx, T=T)
    except PersonalizeError as exc:
        warnings.warn(f"BG/NBD features left empty: {exc}", RuntimeWarning, stacklevel=3)
        return f.withColumns(nan_cols), None
    state = model.to_dict()

    def score(batches):
        m = BGNBDModel.from_dict(state)
        for b in batches:
            bx, btx, bT = (b[c].to_numpy(np.float64) for c in ("_x", "_tx", "_T"))
            pa = m.p_alive(frequency=bx, recency=btx, T=bT)
            yield pd.DataFrame({"customer_id": b["customer_id"].to_numpy(), "bgnbd_p_alive": pa,
                                "bgnbd_expected": m.expected_purchases(horizon_weeks, frequency=bx, recency=btx, T=bT),
                                "bgnbd_p_none": bgnbd_p_none(m.params_, bx, btx, bT, horizon_weeks, pa)})

    scored = f.select("customer_id", "_x", "_tx", "_T").mapInPandas(
        score, "customer_id string, bgnbd_p_alive double, bgnbd_expected double, bgnbd_p_none double")
    return f.join(scored, "customer_id", "left"), dict(model.params_)


def labels(sds: SparkDataset, cutoff, horizon_days: float) -> DataFrame:
    """Customers who bought in ``[cutoff, cutoff + horizon)`` as known at its end (``customer_id``,
    ``_bought`` true): the churn label is 1 for everyone else."""
    F = _F()
    cut = to_timestamp(cutoff, "cutoff")
    end = cut + pd.Timedelta(days=float(horizon_days))
    return sds.known_at(end, start=cut).select("customer_id").distinct().withColumn("_bought", F.lit(True))


def snapshot(sds: SparkDataset, cutoff, *, horizon_days: float = 90.0, with_labels: bool = True,
             windows: tuple[int, ...] = DEFAULT_WINDOWS, bgnbd: bool = True, end=None,
             known: DataFrame | None = None) -> tuple[DataFrame, dict]:
    """(Spark DataFrame, meta): one churn snapshot (:func:`personalize.churn.snapshot` with
    ``target="churn"``): the features at ``cutoff``, ``cutoff`` and, with labels, ``label`` (1 = no
    purchase in the horizon). The label window must be closed (``cutoff + horizon <= end``). ``known``:
    the materialized ``sds.known_at(cutoff)`` when the caller has it already."""
    F = _F()
    cut = to_timestamp(cutoff, "cutoff")
    if horizon_days <= 0:
        raise DataError(f"horizon_days must be > 0, got {horizon_days}")
    if with_labels:
        stop = to_timestamp(end, "end") if end is not None else sds.data_end()
        if cut + pd.Timedelta(days=float(horizon_days)) > stop:
            raise DataError(f"label window of cutoff {cut.date()} + {horizon_days:g} days ends after the data "
                            f"(which ends {stop.date()}); use an earlier cutoff or a shorter horizon")
    feats, params = churn_features(sds, cut, horizon_days=horizon_days, windows=windows, bgnbd=bgnbd, known=known)
    feats = feats.withColumn("cutoff", F.lit(cut.to_pydatetime()))
    if with_labels:
        lab = labels(sds, cut, horizon_days)
        feats = feats.join(lab, "customer_id", "left") \
            .withColumn("label", F.when(F.col("_bought").isNull(), 1).otherwise(0).cast("tinyint")).drop("_bought")
    return feats, {"bgnbd_params": params, "cutoffs": [cut.isoformat()]}


def _to_training_set(frames: list[tuple[pd.Timestamp, pd.DataFrame]], horizon_days: float, metas: list[dict],
                     with_labels: bool) -> TrainingSet:
    cols = [c for c in frames[-1][1].columns if c not in ("customer_id", "cutoff", "label")]
    X = pd.concat([f.reindex(columns=cols) for _, f in frames], ignore_index=True).astype(np.float64)
    cid = np.concatenate([f["customer_id"].to_numpy(dtype=object) for _, f in frames])
    cut = np.concatenate([np.full(len(f), c.to_datetime64(), dtype="datetime64[ns]") for c, f in frames])
    y = np.concatenate([f["label"].to_numpy(np.int8) for _, f in frames]) if with_labels else None
    meta = dict(metas[-1])
    meta["cutoffs"] = [c.isoformat() for c, _ in frames]
    meta["bgnbd_params_by_cutoff"] = [m.get("bgnbd_params") for m in metas]
    return TrainingSet(X, y, cid, cut, float(horizon_days), "churn", meta)


def collect_snapshot(df: DataFrame) -> pd.DataFrame:
    """A snapshot's rows on the driver, sorted by customer id (the pandas path's order)."""
    return df.orderBy("customer_id").toPandas()


def training_set(sds: SparkDataset, cutoffs, *, horizon_days: float = 90.0,
                 windows: tuple[int, ...] = DEFAULT_WINDOWS, bgnbd: bool = True, end=None) -> TrainingSet:
    """Churn snapshots at ``cutoffs`` computed on Spark and collected as the
    :class:`~personalize.churn.TrainingSet` of :func:`personalize.churn.training_set` (one row per customer
    and cutoff: it fits the driver, where LightGBM trains)."""
    if isinstance(cutoffs, (str, pd.Timestamp)) or not hasattr(cutoffs, "__iter__"):
        cutoffs = [cutoffs]
    cuts = sorted(to_timestamp(c, "cutoff") for c in cutoffs)
    if not cuts:
        raise DataError("give at least one cutoff")
    frames, metas = [], []
    for c in cuts:
        df, meta = snapshot(sds, c, horizon_days=horizon_days, windows=windows, bgnbd=bgnbd, end=end)
        frames.append((c, collect_snapshot(df)))
        metas.append(meta)
    return _to_training_set(frames, horizon_days, metas, True)


def scoring_frame(sds: SparkDataset, as_of=None, *, horizon_days: float = 90.0,
                  windows: tuple[int, ...] = DEFAULT_WINDOWS, bgnbd: bool = True,
                  known: DataFrame | None = None) -> DataFrame:
    """Production scoring features of every customer as of ``as_of`` (default: the data's end), on Spark.
    ``known``: the materialized ``sds.known_at(as_of)`` when the caller has it already."""
    cut = to_timestamp(as_of, "as_of") if as_of is not None else sds.data_end()
    df, _ = snapshot(sds, cut, horizon_days=horizon_days, with_labels=False, windows=windows, bgnbd=bgnbd,
                     known=known)
    return df


def production_cutoffs(sds: SparkDataset, *, horizon_days: float = 90.0, n_cutoffs: int = 3,
                       spacing_days: float = 30.0, end=None) -> list[pd.Timestamp]:
    """:func:`personalize.churn.production_cutoffs` from the Spark dataset's time range."""
    if n_cutoffs < 1:
        raise DataError(f"n_cutoffs must be >= 1, got {n_cutoffs}")
    if spacing_days <= 0:
        raise DataError(f"spacing_days must be > 0, got {spacing_days}")
    stop = to_timestamp(end, "end") if end is not None else sds.data_end()
    last = (stop - pd.Timedelta(days=float(horizon_days))).normalize()
    first = sds.first_timestamp
    cuts = [last - pd.Timedelta(days=float(spacing_days) * i) for i in range(n_cutoffs)]
    cuts = [c for c in cuts if c > first]
    if not cuts:
        raise DataError(f"the data ({first.date()} .. {stop.date()}) is shorter than the horizon of "
                        f"{horizon_days:g} days: no closed label window to train on")
    return sorted(cuts)
