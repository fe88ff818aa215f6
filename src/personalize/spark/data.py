"""The data contract on Spark: the same columns, mapping, validation and cleaning rules as
:class:`personalize.data.Dataset`, and the same cleaning report.

:meth:`SparkDataset.from_parquet` (or :meth:`SparkDataset.from_frames` on any
Spark DataFrames: a table, JDBC, Delta, CSV read by Spark) maps the user's
columns to the canonical ones (:mod:`personalize.data.schema`), casts them
with the contract's rules and cleans the transactions with the rules of
:mod:`personalize.data.cleaning`, in the same order, so the
:class:`~personalize.data.CleaningReport` counts the same rows under the same
reasons (``kept + sum(dropped) == input``). Errors are the same
:class:`~personalize.errors.DataError` naming the table, the column and a few
offending rows (0-based positions in the input as read).

Differences from the pandas path, all documented and tested:

* Spark timestamps have microsecond resolution: finer parts are truncated.
  Parquet written by pandas stores nanoseconds, which the session reads as
  integers (``spark.sql.legacy.parquet.nanosAsLong``) and this module turns
  back into timestamps.
* Timestamp text must be ISO 8601 (``2011-12-09 12:50:00``, ``...T...Z``,
  offsets) or follow ``time_format``; the pandas path's per-row guessing of
  other layouts is not repeated (declare the format instead).
* ``non_product_pattern`` runs on Java's regex engine, anchored at the start
  like Python's ``re.match`` (the default pattern means the same in both).
* Ties between lines (same customer, item and time) are broken by input
  order, which Spark keeps for files read in order (one Parquet file, or the
  files of a glob in name order).

Offers and campaign exposures (next-best-offer, coupons) are read with Spark
too, then collected and validated on the driver by the pandas path's own
rules (:func:`personalize.data.validate.prepare_table`): the catalog is small,
and the models learn from one row per exposure, on one machine
(:mod:`personalize.spark.offers`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from personalize.data.cleaning import CleaningOptions, CleaningReport
from personalize.data.dataset import _split_mapping
from personalize.data.schema import TABLES, TRANSACTIONS, TableSchema
from personalize.data.validate import mapped_columns, to_timestamp
from personalize.errors import DataError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["SparkDataset", "net_quantities", "strftime_to_java"]

POS = "_pos"            # input position (monotonically increasing id, in input order)
RESTORED = "_restored"  # line restored by a time slice (returned in full only after the slice's end)
_NS_LO, _NS_HI = "1677-09-22", "2262-04-11"
_TRUE = ("true", "t", "yes", "y", "1", "1.0")
_FALSE = ("false", "f", "no", "n", "0", "0.0", "")
_REASONS = ("exact_duplicate", "guest", "non_product", "negative_price", "zero_quantity", "return",
            "returned_purchase", "zero_price", "unknown_item")


def _F():
    from pyspark.sql import functions as F
    return F


# ---------------------------------------------------------------------------- row positions
def _positions(df: DataFrame, rows: DataFrame, n: int = 5) -> list[int]:
    """0-based input positions of the first ``n`` rows of ``rows`` (a filter of ``df``, both with ``_pos``).

    ``_pos`` is ``monotonically_increasing_id``: partition index in the upper
    31 bits, the row's index in its partition below; the partitions' sizes
    turn it into the position in the input as read.
    """
    F = _F()
    first = [r[0] for r in rows.select(POS).orderBy(POS).limit(n).collect()]
    if not first:
        return []
    sizes = {r["p"]: r["n"] for r in df.groupBy(F.shiftright(F.col(POS), 33).alias("p")).count()
             .withColumnRenamed("count", "n").collect()}
    out = []
    for pos in first:
        part, idx = pos >> 33, pos & ((1 << 33) - 1)
        out.append(int(sum(c for p, c in sizes.items() if p < part) + idx))
    return out


class _Checks:
    """Validation checks collected while building casts and run as one Spark job (details only on failure)."""

    def __init__(self) -> None:
        self.items: list[tuple] = []

    def add(self, df: DataFrame, mask: Column, message: str, *, table: str, column: str | None,
            sample_col: Column | str | None = None) -> None:
        self.items.append((df, mask, message, table, column, sample_col))

    def run(self) -> None:
        if not self.items:
            return
        F = _F()
        by_df: dict[int, list[int]] = {}
        for k, it in enumerate(self.items):
            by_df.setdefault(id(it[0]), []).append(k)
        failed: set[int] = set()
        for ks in by_df.values():
            df = self.items[ks[0]][0]
            row = df.agg(*[F.max(F.when(self.items[k][1], 1).otherwise(0)).alias(f"c{k}") for k in ks]).collect()[0]
            failed |= {k for k in ks if row[f"c{k}"]}
        self.items, items = [], self.items
        for k in sorted(failed):  # the first failing check in declaration order raises
            df, mask, message, table, column, sample_col = items[k]
            _fail(df, mask, message, table=table, column=column, sample_col=sample_col)


def _fail(df: DataFrame, mask: Column, message: str, *, table: str, column: str | None,
          sample_col: Column | str | None = None) -> None:
    """Raise DataError(message (+ a few offending values), rows=positions) when ``mask`` holds for a row."""
    bad = df.filter(mask)
    head = bad.select(POS, *([sample_col] if sample_col is not None else [])).orderBy(POS).limit(3).collect()
    if not head:
        return
    if sample_col is not None:
        message = f"{message} ({', '.join(repr(r[1]) for r in head)})"
    raise DataError(message, table=table, column=column, rows=_positions(df, bad))


def materialize(df: DataFrame) -> DataFrame:
    """Compute ``df`` now and cut its lineage (a reliable checkpoint when the session has a checkpoint
    directory, else a local one): later plans that read it many times stay small."""
    sc = df.sparkSession.sparkContext
    if sc.getCheckpointDir():
        return df.checkpoint(eager=True)
    return df.localCheckpoint(eager=True)


# ---------------------------------------------------------------------------- mapping and casts
def apply_mapping(df: DataFrame, schema: TableSchema, mapping: Mapping[str, str] | None) -> DataFrame:
    """Rename user columns to canonical names and keep only known columns: the pandas path's rules
    (:func:`personalize.data.validate.mapped_columns`) on the DataFrame's column names."""
    chosen = mapped_columns([c for c in df.columns if c != POS], schema, mapping)
    F = _F()
    return df.select(*[F.col(f"`{src}`").alias(canon) for canon, src in chosen.items()], POS)


_STRFTIME = {"%Y": "yyyy", "%y": "yy", "%m": "MM", "%d": "dd", "%H": "HH", "%I": "hh", "%M": "mm", "%S": "ss",
             "%f": "SSSSSS", "%p": "a", "%b": "MMM", "%B": "MMMM", "%j": "DDD", "%z": "Z", "%%": "%"}


def strftime_to_java(fmt: str) -> str:
    """A strftime format (``%d/%m/%Y %H:%M``) as a Java date-time pattern (``dd/MM/yyyy HH:mm``)."""
    out, i = [], 0
    while i < len(fmt):
        if fmt[i] == "%":
            tok = fmt[i:i + 2]
            if tok not in _STRFTIME:
                raise DataError(f"time format {fmt!r}: directive {tok!r} is not supported on Spark "
                                f"(supported: {' '.join(sorted(_STRFTIME))})")
            out.append(_STRFTIME[tok])
            i += 2
        else:
            run = ""
            while i < len(fmt) and fmt[i] != "%":
                run += fmt[i]
                i += 1
            out.append("'" + run.replace("'", "''") + "'" if re.search(r"[A-Za-z']", run) else run)
    return "".join(out)


def _is(dtype, *names: str) -> bool:
    return type(dtype).__name__ in names


_INTEGRAL = ("ByteType", "ShortType", "IntegerType", "LongType")
_FRACTIONAL = ("FloatType", "DoubleType", "DecimalType")


def _strip(c: Column) -> Column:
    """Leading and trailing whitespace removed (Python's ``str.strip``, not only spaces)."""
    return _F().regexp_replace(c, r"^\s+|\s+$", "")


def _finite(v: Column) -> Column:
    F = _F()
    return v.isNotNull() & ~F.isnan(v) & ~v.isin(float("inf"), float("-inf"))


def _cast_id(df: DataFrame, col: str, table: str, checks: _Checks) -> Column:
    F = _F()
    dtype = df.schema[col].dataType
    c = F.col(col)
    if _is(dtype, "BooleanType"):
        raise DataError("ids must be strings or integers, got booleans", table=table, column=col)
    if _is(dtype, *_FRACTIONAL):
        v = c.cast("double")
        checks.add(df, _finite(v) & (F.floor(v) != v), "ids must be whole numbers or strings, found fractional "
                   "values", table=table, column=col, sample_col=c)
        return F.when(_finite(v), v.cast("long").cast("string"))
    if _is(dtype, *_INTEGRAL):
        return c.cast("string")
    s = _strip(c.cast("string"))
    return F.when(s != "", s)


def _cast_time(df: DataFrame, col: str, table: str, checks: _Checks, *, time_format: str | None,
               required: bool) -> Column:
    F = _F()
    dtype = df.schema[col].dataType
    c = F.col(col)
    if _is(dtype, "TimestampType", "TimestampNTZType", "DateType"):
        out = c.cast("timestamp")
    elif _is(dtype, "LongType") and time_format is None:
        # nanoseconds since the epoch: what the session reads for Parquet timestamps written by pandas
        out = F.timestamp_micros(F.expr(f"(`{col}` - pmod(`{col}`, 1000)) div 1000"))
    else:
        if _is(dtype, *_INTEGRAL, *_FRACTIONAL):
            if not time_format:
                raise DataError("expected dates or timestamps, got numbers; declare the format (e.g. --time-format "
                                "%Y%m%d)", table=table, column=col)
            raw = c.cast("long").cast("string")
        else:
            raw = _strip(c.cast("string"))
        raw = F.when(raw != "", raw)
        if time_format:
            out = F.try_to_timestamp(raw, F.lit(strftime_to_java(time_format)))
        else:  # ISO 8601; text with an offset is converted to UTC (the session time zone)
            out = raw.try_cast("timestamp")
        hint = f" with format {time_format!r}" if time_format else ""
        checks.add(df, out.isNull() & raw.isNotNull(), f"unparseable timestamps{hint}", table=table, column=col,
                   sample_col=raw)
    lo, hi = F.lit(_NS_LO).cast("timestamp"), F.lit(_NS_HI).cast("timestamp")
    checks.add(df, (out < lo) | (out >= hi), f"timestamps out of range (supported: {_NS_LO} to {_NS_HI}; found",
               table=table, column=col, sample_col=out.cast("string"))
    if required:
        checks.add(df, out.isNull(), "missing timestamps", table=table, column=col)
    return out


def _cast_float(df: DataFrame, col: str, table: str, checks: _Checks, *, decimal: str, required: bool) -> Column:
    F = _F()
    dtype = df.schema[col].dataType
    c = F.col(col)
    if _is(dtype, "BooleanType", *_INTEGRAL, *_FRACTIONAL):
        out = c.cast("double")
    else:
        raw = _strip(c.cast("string"))
        raw = F.when(raw != "", raw)
        if decimal != ".":
            ok = raw.rlike(r"^[-+]?\d{1,3}(\.\d{3})+(" + re.escape(decimal) + r"\d*)?$")
            checks.add(df, raw.contains(".") & ~ok, f"expected numbers with decimal mark {decimal!r}, found",
                       table=table, column=col, sample_col=raw)
            raw = F.replace(F.replace(raw, F.lit("."), F.lit("")), F.lit(decimal), F.lit("."))
        out = raw.try_cast("double")
        checks.add(df, out.isNull() & raw.isNotNull(), "expected numbers, found", table=table, column=col,
                   sample_col=raw)
    checks.add(df, out.isin(float("inf"), float("-inf")), "numbers overflow (infinite or beyond float64 range)",
               table=table, column=col)
    if required:
        checks.add(df, out.isNull() | F.isnan(out), "missing numbers", table=table, column=col)
    return F.when(~F.isnan(out), out)  # NaN and missing are one thing in the contract


def _cast_bool(df: DataFrame, col: str, table: str, checks: _Checks) -> Column:
    F = _F()
    c = F.col(col)
    if _is(df.schema[col].dataType, "BooleanType"):
        return F.coalesce(c, F.lit(False))
    low = F.coalesce(F.lower(_strip(c.cast("string"))), F.lit(""))
    checks.add(df, ~low.isin(*_TRUE, *_FALSE), "expected true/false, yes/no or 1/0, found", table=table,
               column=col, sample_col=c.cast("string"))
    return low.isin(*_TRUE)


def cast_table(df: DataFrame, schema: TableSchema, *, time_format: str | None = None,
               decimal: str = ".") -> DataFrame:
    """Cast every canonical column of ``df`` to its contract type (all checks in one Spark job)."""
    checks = _Checks()
    out = []
    for col in df.columns:
        if col == POS:
            continue
        kind = schema.columns[col]
        required = col in schema.required
        if kind in ("id", "str"):
            e = _cast_id(df, col, schema.name, checks)
        elif kind == "time":
            e = _cast_time(df, col, schema.name, checks, time_format=time_format, required=required)
        elif kind == "float":
            e = _cast_float(df, col, schema.name, checks, decimal=decimal, required=required)
        elif kind == "bool":
            e = _cast_bool(df, col, schema.name, checks)
        else:
            raise DataError(f"{kind} columns are not read on Spark", table=schema.name, column=col)
        out.append(e.alias(col))
    checks.run()
    return df.select(*out, POS)


def _with_pos(df: DataFrame) -> DataFrame:
    F = _F()
    if POS in df.columns:
        raise DataError(f"column name {POS!r} is reserved", table="transactions")
    return df.withColumn(POS, F.monotonically_increasing_id())


def prepare_table(df: DataFrame | None, name: str, mapping: Mapping[str, str] | None = None, *,
                  time_format: str | None = None, decimal: str = ".") -> DataFrame | None:
    """Map, cast and key-check an items or customers table on Spark."""
    if df is None:
        return None
    F = _F()
    schema = TABLES[name]
    cast = cast_table(apply_mapping(_with_pos(df), schema, mapping), schema, time_format=time_format,
                      decimal=decimal)
    key = schema.key
    _fail(cast, F.col(key).isNull(), "empty ids", table=name, column=key)
    dups = cast.groupBy(key).count().filter("count > 1").select(key)
    if dups.limit(1).count():
        marked = cast.join(dups.withColumn("_dup", F.lit(True)), key, "left").filter("_dup")
        _fail(cast.join(marked.select(POS, "_dup"), POS, "left"), F.col("_dup").isNotNull(), "duplicate keys",
              table=name, column=key, sample_col=key)
    return materialize(cast)


# ---------------------------------------------------------------------------- netting
def net_quantities(buys: DataFrame, rets: DataFrame) -> DataFrame:
    """``buys`` with ``new_q``: quantity after netting ``rets`` (both: customer_id, item_id, timestamp,
    quantity > 0; buys also ``_pos``).

    Each return subtracts from the same customer's purchases of the same item
    made no later than the pair's last return, most recent first (ties: later
    input position first) -- :func:`personalize.data.cleaning.net_quantities`.
    """
    F = _F()
    from pyspark.sql import Window

    key = ["customer_id", "item_id"]
    per_pair = rets.groupBy(*key).agg(F.sum("quantity").alias("_returned"), F.max("timestamp").alias("_last"))
    b = buys.select(*key, "timestamp", "quantity", POS).join(per_pair, key, "inner") \
        .filter(F.col("timestamp") <= F.col("_last"))
    w = Window.partitionBy(*key).orderBy(F.col("timestamp").desc(), F.col(POS).desc()) \
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    cum_after = F.sum("quantity").over(w) - F.col("quantity")
    remaining = F.greatest(F.col("_returned") - cum_after, F.lit(0.0))
    take = F.least(F.col("quantity"), remaining)
    b = b.select(POS, (F.col("quantity") - take).alias("new_q"))
    return buys.join(b, POS, "left").withColumn("new_q", F.coalesce("new_q", "quantity"))


# ---------------------------------------------------------------------------- the dataset
class SparkDataset:
    """Validated, cleaned purchase history on Spark (see the module docstring).

    ``transactions``: kept lines in canonical columns plus ``amount`` and
    ``_pos`` (input position); ``returns``: netted return lines (customer_id,
    item_id, timestamp, quantity returned); ``netted``: purchase lines that
    netting changed, with their original quantity and ``present`` (kept after
    cleaning): what :meth:`known_at` needs to undo returns made after a
    cutoff. ``items`` / ``customers``: the cast auxiliary tables or None.
    ``report``: the :class:`~personalize.data.CleaningReport`.
    """

    def __init__(self, spark: SparkSession, transactions: DataFrame, *, returns: DataFrame, netted: DataFrame,
                 report: CleaningReport, items: DataFrame | None, customers: DataFrame | None,
                 columns: list[str], offers: pd.DataFrame | None = None,
                 exposures: pd.DataFrame | None = None) -> None:
        self.spark = spark
        self.transactions = transactions
        self.returns = returns
        self.netted = netted
        self.report = report
        self.items = items
        self.customers = customers
        self.columns = columns  # canonical transaction columns present in the input
        self.offers = offers          # pandas, validated as Dataset.offers
        self.exposures = exposures    # pandas, validated and sorted by time as Dataset.exposures
        self._bounds: tuple[pd.Timestamp, pd.Timestamp] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_parquet(cls, spark: SparkSession, transactions: str, *, items: str | None = None,
                     customers: str | None = None, offers: str | None = None, exposures: str | None = None,
                     **kwargs) -> "SparkDataset":
        """Read Parquet files, folders or globs with Spark and build the dataset (see :meth:`from_frames`)."""
        def read(path, table):
            if path is None:
                return None
            try:
                return spark.read.parquet(str(path))
            except Exception as exc:  # noqa: BLE001 - Spark raises AnalysisException for a missing path
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise DataError(f"cannot read Parquet {path}: {first}", table=table) from None
        return cls.from_frames(spark, read(transactions, "transactions"), items=read(items, "items"),
                               customers=read(customers, "customers"), offers=read(offers, "offers"),
                               exposures=read(exposures, "exposures"), **kwargs)

    @classmethod
    def from_frames(cls, spark: SparkSession, transactions: DataFrame, *, items: DataFrame | None = None,
                    customers: DataFrame | None = None, offers: DataFrame | None = None,
                    exposures: DataFrame | None = None, mapping: Mapping | None = None,
                    options: CleaningOptions | None = None, time_format: str | None = None,
                    decimal: str = ".") -> "SparkDataset":
        """Validate, clean and cache Spark DataFrames; ``mapping`` as in :meth:`Dataset.from_frames`.
        ``offers`` and ``exposures`` (Spark or pandas frames) are collected and validated on the driver."""
        if transactions is None:
            raise DataError("transactions are required", table="transactions")
        options = options or CleaningOptions()
        maps = _split_mapping(mapping)
        extra = sorted(set(maps) - {"transactions", "items", "customers", "offers", "exposures"})
        if extra:
            raise DataError("the Spark path reads transactions, items, customers, offers and exposures; mapping "
                            f"names {extra}")
        offers_pd, exposures_pd = _driver_tables(offers, exposures, maps, time_format=time_format, decimal=decimal)
        tx = apply_mapping(_with_pos(transactions), TRANSACTIONS, maps.get("transactions"))
        tx = cast_table(tx, TRANSACTIONS, time_format=time_format, decimal=decimal).persist()
        it = prepare_table(items, "items", maps.get("items"), decimal=decimal)
        cu = prepare_table(customers, "customers", maps.get("customers"), decimal=decimal)
        cols = [c for c in tx.columns if c != POS]
        try:
            kept, report, returns, netted = _clean(tx, options, it)
        finally:
            tx.unpersist()
        return cls(spark, kept, returns=returns, netted=netted, report=report, items=it, customers=cu,
                   columns=cols, offers=offers_pd, exposures=exposures_pd)

    # ------------------------------------------------------------------ facts
    def __len__(self) -> int:
        return self.report.kept_rows

    def bounds(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """(first, last) timestamp of the kept transactions."""
        if self._bounds is None:
            F = _F()
            r = self.transactions.agg(F.min("timestamp").alias("a"), F.max("timestamp").alias("b")).collect()[0]
            self._bounds = (pd.Timestamp(r["a"]), pd.Timestamp(r["b"]))
        return self._bounds

    @property
    def first_timestamp(self) -> pd.Timestamp:
        return self.bounds()[0]

    @property
    def last_timestamp(self) -> pd.Timestamp:
        return self.bounds()[1]

    def data_end(self) -> pd.Timestamp:
        """Midnight after the last transaction day (:func:`personalize.churn.data_end`)."""
        return self.last_timestamp.normalize() + pd.Timedelta(days=1)

    def summary(self) -> dict:
        """The numbers ``personalize validate`` prints, computed on Spark."""
        F = _F()
        r = self.report
        aggs = [F.countDistinct("customer_id").alias("c"), F.countDistinct("item_id").alias("i"),
                F.sum("amount").alias("rev")]
        if "order_id" in self.columns:
            aggs.append(F.countDistinct("order_id").alias("o"))
        row = self.transactions.agg(*aggs).collect()[0]
        first, last = self.bounds()
        return {"input_rows": r.input_rows, "kept_rows": r.kept_rows, "dropped": dict(r.dropped),
                "details": dict(r.details), "transactions": len(self), "customers": int(row["c"]),
                "items": int(row["i"]), "orders": int(row["o"]) if "order_id" in self.columns else None,
                "first_timestamp": first.isoformat(), "last_timestamp": last.isoformat(),
                "revenue": float(row["rev"] or 0.0),
                "tables": {"items": None if self.items is None else self.items.count(),
                           "customers": None if self.customers is None else self.customers.count()}}

    def vocabularies(self) -> tuple[list[str], list[str]]:
        """(customer ids, item ids), sorted: the vocabularies :class:`Dataset` builds from the same input
        (kept lines, purchases returned in full, and the items / customers tables)."""
        def ids(col, table):
            parts = [self.transactions.select(col), self.netted.select(col)]
            if table is not None:
                parts.append(table.select(col))
            df = parts[0]
            for p in parts[1:]:
                df = df.unionByName(p)
            return [r[0] for r in df.distinct().orderBy(col).collect()]
        return ids("customer_id", self.customers), ids("item_id", self.items)

    # ------------------------------------------------------------------ point in time
    def known_at(self, end, start=None) -> DataFrame:
        """Lines with ``start <= timestamp < end`` as known at ``end`` (:meth:`Dataset.between` / ``until``).

        Purchases netted by returns made at or after ``end`` get back their
        quantity before those returns (re-netted with the earlier returns
        only); purchases returned in full after ``end`` come back with
        ``_restored`` true.
        """
        F = _F()
        e = to_timestamp(end, "end")
        s = to_timestamp(start, "start") if start is not None else None

        def window(df):
            m = F.col("timestamp") < F.lit(e)
            if s is not None:
                m = m & (F.col("timestamp") >= F.lit(s))
            return df.filter(m)

        key = ["customer_id", "item_id"]
        tx = window(self.transactions).withColumn(RESTORED, F.lit(False))
        late = self.returns.filter(F.col("timestamp") >= F.lit(e)).select(*key).distinct()
        cand = window(self.netted).join(late, key, "left_semi")
        early = self.returns.filter(F.col("timestamp") < F.lit(e)).join(cand.select(*key).distinct(), key,
                                                                        "left_semi")
        new = net_quantities(cand, early)
        upd = new.filter("present").select(POS, F.col("new_q").alias("_q"))
        tx = tx.join(upd, POS, "left") \
            .withColumn("quantity", F.coalesce("_q", "quantity")).drop("_q")
        back = new.filter(~F.col("present") & (F.col("new_q") > 0)) \
            .withColumn("quantity", F.col("new_q")).withColumn(RESTORED, F.lit(True))
        cols = self.columns + [POS, RESTORED]
        out = tx.select(*cols).unionByName(back.select(*cols))
        return out.withColumn("amount", F.col("quantity") * F.col("price"))

    def until(self, end) -> "SparkDataset":
        """This dataset as known at ``end`` (lines before it; :meth:`Dataset.until`): same vocabularies, same
        report, so models fitted on it line up with ones fitted on the whole."""
        F = _F()
        e = to_timestamp(end, "end")
        lines = materialize(self.known_at(e).drop(RESTORED))
        rets = self.returns.filter(F.col("timestamp") < F.lit(e))
        out = SparkDataset(self.spark, lines, returns=rets, netted=self.netted, report=self.report, items=self.items,
                           customers=self.customers, columns=self.columns, offers=self.offers,
                           exposures=None if self.exposures is None
                           else self.exposures[self.exposures["exposed_at"] < e].reset_index(drop=True))
        return out

    def to_pandas_frames(self) -> dict[str, pd.DataFrame]:
        """The cleaned tables as pandas frames (small data only: tests and notebooks)."""
        out = {"transactions": self.transactions.drop(POS).toPandas()}
        if self.items is not None:
            out["items"] = self.items.drop(POS).toPandas()
        if self.customers is not None:
            out["customers"] = self.customers.drop(POS).toPandas()
        return out

    def unpersist(self) -> None:
        for df in (self.transactions, self.returns, self.netted, self.items, self.customers):
            if df is not None:
                df.unpersist()


def _driver_tables(offers, exposures, maps, *, time_format: str | None, decimal: str):
    """Offers and exposures collected to the driver and validated as :meth:`Dataset.from_frames` does."""
    from personalize.data.dataset import _check_offer_kinds, _check_offers
    from personalize.data.validate import prepare_table as prepare_pandas

    def local(df, name):
        if df is None or isinstance(df, pd.DataFrame):
            return prepare_pandas(df, name, maps.get(name), decimal=decimal)
        # Parquet timestamps written by pandas come as integer nanoseconds: those become timestamps here, the
        # rest is the pandas contract on the collected rows
        F = _F()
        schema = TABLES[name]
        chosen = mapped_columns(df.columns, schema, maps.get(name))
        cols = []
        for c in df.columns:
            canon = next((k for k, v in chosen.items() if v == c), None)
            if canon is not None and schema.columns[canon] == "time" and _is(df.schema[c].dataType, "LongType") \
                    and time_format is None:
                cols.append(F.timestamp_micros(F.expr(f"(`{c}` - pmod(`{c}`, 1000)) div 1000")).alias(c))
            else:
                cols.append(F.col(f"`{c}`"))
        return prepare_pandas(df.select(*cols).toPandas(), name, maps.get(name), decimal=decimal)

    off = local(offers, "offers")
    if off is not None:
        _check_offer_kinds(off)
        _check_offers(off)
    exp = local(exposures, "exposures")
    if exp is not None:
        exp = exp.sort_values("exposed_at", kind="stable").reset_index(drop=True)
    return off, exp


def _clean(tx: DataFrame, options: CleaningOptions, items: DataFrame | None):
    """The rules of :func:`personalize.data.cleaning.clean_transactions` on Spark (same order, same report)."""
    F = _F()
    from pyspark.sql import Window

    T = "transactions"
    now = options.now if options.now is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    limit = pd.Timestamp(now) + pd.Timedelta(days=options.future_tolerance_days)
    future = F.col("timestamp") > F.lit(limit.to_pydatetime())
    stats = tx.agg(F.count(F.lit(1)).alias("n"), F.count("item_id").alias("items"),
                   F.count("customer_id").alias("custs"),
                   F.max(F.when(future, 1).otherwise(0)).alias("future")).collect()[0]
    n = int(stats["n"])
    if n == 0:
        raise DataError("no data rows", table=T)
    if stats["items"] == 0:
        raise DataError("every item id is empty (is the item column mapped right?)", table=T, column="item_id")
    if stats["custs"] == 0:
        raise DataError("every customer id is empty (is the customer column mapped right?)", table=T,
                        column="customer_id")
    if stats["items"] < n:
        _fail(tx, F.col("item_id").isNull(), "empty item ids", table=T, column="item_id")
    if stats["future"]:
        _fail(tx, future, f"timestamps in the future (later than {limit:%Y-%m-%d %H:%M}; tolerance "
              f"{options.future_tolerance_days:g} days)", table=T, column="timestamp")

    cols = [c for c in tx.columns if c != POS]
    reason = F.lit(None).cast("string")

    def rule(cur, name, cond):
        return F.when(cur.isNull() & cond, F.lit(name)).otherwise(cur)

    if options.drop_duplicates:
        w = Window.partitionBy(*cols).orderBy(POS)
        tx = tx.withColumn("_dup", F.row_number().over(w) > 1)
        reason = rule(reason, "exact_duplicate", F.col("_dup"))
    reason = rule(reason, "guest", F.col("customer_id").isNull())
    if options.non_product_items or options.non_product_pattern:
        np_mask = F.col("item_id").isin(list(options.non_product_items)) if options.non_product_items \
            else F.lit(False)
        if options.non_product_pattern:
            np_mask = np_mask | F.coalesce(F.col("item_id").rlike("^(?:" + options.non_product_pattern + ")"),
                                           F.lit(False))
        reason = rule(reason, "non_product", np_mask)
    staged = tx.withColumn("_r", reason)
    # negative prices are marked even when they are an error: the error is raised from the counts below
    staged = staged.withColumn("_r", rule(F.col("_r"), "negative_price", F.col("price") < 0))
    staged = staged.withColumn("_r", rule(F.col("_r"), "zero_quantity", F.col("quantity") == 0))
    staged = staged.withColumn("_r", rule(F.col("_r"), "return", F.col("quantity") < 0))
    details: dict[str, float] = {}
    net = options.returns == "net"
    new_q = F.col("quantity")
    if net:
        rets = staged.filter(F.col("_r") == "return").select("customer_id", "item_id", "timestamp",
                                                             (-F.col("quantity")).alias("quantity"))
        buys = staged.filter(F.col("_r").isNull() & (F.col("quantity") > 0))
        netq = net_quantities(buys.select("customer_id", "item_id", "timestamp", "quantity", POS), rets) \
            .filter(F.col("new_q") != F.col("quantity")).select(POS, "new_q")
        staged = staged.join(netq, POS, "left")
        changed = F.col("new_q").isNotNull()
        staged = staged.withColumn("_changed", changed) \
            .withColumn("_r", rule(F.col("_r"), "returned_purchase", changed & (F.col("new_q") <= 0)))
        new_q = F.coalesce(F.col("new_q"), F.col("quantity"))
    if options.zero_price == "drop":
        staged = staged.withColumn("_r", rule(F.col("_r"), "zero_price", F.col("price") == 0))
    known_item = F.lit(True)
    if items is not None:
        staged = staged.join(items.select("item_id", F.lit(True).alias("_known")), "item_id", "left")
        known_item = F.col("_known").isNotNull()
        if options.unknown_items == "keep":
            known_item = F.lit(True)
        else:
            staged = staged.withColumn("_r", rule(F.col("_r"), "unknown_item", ~known_item))
    staged = staged.persist()
    counts = {r["_r"]: int(r["count"]) for r in staged.groupBy("_r").count().collect()}
    if counts.get("negative_price") and options.negative_price == "error":
        staged.unpersist()
        _fail(staged, F.col("_r") == "negative_price", "negative prices", table=T, column="price")
    if counts.get("unknown_item") and options.unknown_items == "error":
        bad = F.col("_r") == "unknown_item"
        sample = [r[0] for r in staged.filter(bad).orderBy(POS).select("item_id").limit(3).collect()]
        staged.unpersist()
        _fail(staged, bad, f"transactions refer to items missing from the item table ({sample}); use "
              "unknown_items='drop' or 'keep'", table=T, column="item_id")
    kept_n = counts.pop(None, 0)
    dropped = {k: counts[k] for k in _REASONS if counts.get(k)}
    if net and dropped.get("return"):
        agg = staged.filter("_changed").agg(F.count(F.lit(1)).alias("n"),
                                            F.sum(F.when(F.col("new_q") > 0, 1).otherwise(0)).alias("partly"),
                                            F.sum(F.col("quantity") - F.col("new_q")).alias("netted")).collect()[0]
        details = {"netted_quantity": float(agg["netted"] or 0.0), "partially_returned_rows": int(agg["partly"] or 0)}
    if kept_n == 0:
        staged.unpersist()
        raise DataError(f"no transactions left after cleaning ({n} input rows, dropped: {dropped})", table=T)
    report = CleaningReport(input_rows=n, kept_rows=kept_n, dropped=dropped, details=details)

    kept = staged.filter(F.col("_r").isNull()).select(*[new_q.alias(c) if c == "quantity" else F.col(c)
                                                         for c in cols], POS)
    kept = materialize(kept.withColumn("amount", F.col("quantity") * F.col("price")))
    returns = materialize(staged.filter(F.col("_r") == "return").select(
        "customer_id", "item_id", "timestamp", (-F.col("quantity")).alias("quantity"), POS))
    if net:
        # netted lines a time slice may need back: kept ones, and those returned in full that every
        # other rule would keep (what clean_transactions returns as its netted lines)
        shadow = (F.col("_r") == "returned_purchase")
        if options.zero_price == "drop":
            shadow = shadow & (F.col("price") != 0)
        shadow = shadow & known_item
        netted = materialize(staged.filter(F.col("_changed") & (F.col("_r").isNull() | shadow))
                             .select(*cols, POS, F.col("_r").isNull().alias("present")))
    else:
        netted = materialize(kept.limit(0).select(*cols, POS, F.lit(True).alias("present")))
    staged.unpersist()
    return kept, report, returns, netted
