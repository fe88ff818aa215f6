"""Casting raw tables to the data contract, with errors that say where."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from personalize.data.schema import TABLES, TableSchema
from personalize.errors import DataError

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0", ""}


def _rows(mask: np.ndarray, n: int = 5) -> list[int]:
    return np.flatnonzero(mask)[:n].tolist() if mask.sum() <= n else np.flatnonzero(mask).tolist()


def _sample(series: pd.Series, mask: np.ndarray) -> str:
    vals = series[mask].head(3).tolist()
    return ", ".join(repr(v) for v in vals)


def to_timestamp(value, what: str) -> pd.Timestamp:
    """A user-given date or moment (str, date, datetime, Timestamp) as a naive UTC Timestamp."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: cannot parse {value!r} as a date ({exc})") from None
    if ts is pd.NaT:
        raise DataError(f"{what}: missing date")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def cast_ids(series: pd.Series, table: str, column: str) -> pd.Series:
    """Ids as strings; integer-valued floats (``17850.0``) become ``"17850"``; blanks become missing."""
    s = series
    if pd.api.types.is_bool_dtype(s.dtype):
        raise DataError("ids must be strings or integers, got booleans", table=table, column=column)
    if pd.api.types.is_float_dtype(s.dtype):
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(vals)
        frac = finite & (np.mod(vals, 1.0) != 0)
        if frac.any():
            raise DataError(f"ids must be whole numbers or strings, found fractional values ({_sample(s, frac)})",
                            table=table, column=column, rows=_rows(frac))
        out = pd.Series(np.where(finite, vals, 0).astype(np.int64), index=s.index).astype(str)
        return out.where(finite, None).astype("str")
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.astype("Int64").astype(str).where(s.notna(), None).astype("str")
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    s = s.astype("str")
    # strip and blank -> missing, copying the (possibly huge) column only when something changes
    if (s.str[:1].str.isspace() | s.str[-1:].str.isspace()).fillna(False).any():
        s = s.str.strip()
    blank = (s == "").fillna(False)
    return s.mask(blank, None) if blank.any() else s


def cast_time(series: pd.Series, table: str, column: str, *, time_format: str | None = None,
              required: bool = True) -> pd.Series:
    s = series
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        out = _to_ns(s, table, column)
    else:
        if pd.api.types.is_numeric_dtype(s.dtype) and time_format:
            s = s.astype("Int64").astype(str).where(s.notna(), None)
        elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            raise DataError("expected dates or timestamps, got numbers; declare the format (e.g. --time-format %Y%m%d)",
                            table=table, column=column)
        raw = s.astype("str").str.strip()
        raw = raw.mask(raw == "", None)
        try:
            # utc=True: offsets may differ row to row (daylight saving time); naive text stays as written
            if time_format:
                parsed = pd.to_datetime(raw, format=time_format, errors="coerce", utc=True)
            else:
                parsed = pd.to_datetime(raw, format="ISO8601", errors="coerce", utc=True)
                bad_iso = parsed.isna() & raw.notna()
                if bad_iso.any():  # fall back to per-element inference for non-ISO text
                    rest = raw.where(bad_iso)
                    guess = pd.to_datetime(rest, format="mixed", errors="coerce", utc=True)
                    # per-element inference reads 01/02/2011 month-first but 13/02/2011 day-first: refuse to guess
                    other = pd.to_datetime(rest, format="mixed", errors="coerce", utc=True, dayfirst=True)
                    ambiguous = (guess.notna() & other.notna() & (guess != other)).to_numpy()
                    if ambiguous.any():
                        raise DataError(f"ambiguous day/month order ({_sample(raw, ambiguous)}); declare the format, "
                                        "e.g. --time-format %d/%m/%Y or %m/%d/%Y", table=table, column=column,
                                        rows=_rows(ambiguous))
                    parsed = parsed.where(~bad_iso, guess)
        except DataError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            raise DataError(f"timestamps could not be parsed ({exc})", table=table, column=column) from None
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        bad = (parsed.isna() & raw.notna()).to_numpy()
        if bad.any():
            hint = f" with format {time_format!r}" if time_format else ""
            raise DataError(f"unparseable timestamps{hint} ({_sample(raw, bad)})", table=table, column=column,
                            rows=_rows(bad))
        out = _to_ns(parsed, table, column)
    if required:
        missing = out.isna().to_numpy()
        if missing.any():
            raise DataError("missing timestamps", table=table, column=column, rows=_rows(missing))
    return out


_NS_LO, _NS_HI = "1677-09-22", "2262-04-11"  # whole days inside the datetime64[ns] range


def _to_ns(s: pd.Series, table: str, column: str) -> pd.Series:
    """Cast naive datetimes of any unit to datetime64[ns], naming rows outside its range (1677..2262)."""
    if s.dtype == np.dtype("datetime64[ns]"):
        return s
    vals = s.to_numpy()  # compare in the data's own unit (casting to ns first would overflow); NaT compares False
    unit = np.datetime_data(vals.dtype)[0]
    oob = (vals < np.datetime64(_NS_LO, unit)) | (vals >= np.datetime64(_NS_HI, unit))
    if oob.any():
        raise DataError(f"timestamps out of range (supported: {_NS_LO} to {_NS_HI}; found "
                        f"{', '.join(str(v) for v in s[oob].head(3))})", table=table, column=column, rows=_rows(oob))
    return s.astype("datetime64[ns]")


def cast_float(series: pd.Series, table: str, column: str, *, decimal: str = ".", required: bool = True) -> pd.Series:
    s = series
    if pd.api.types.is_bool_dtype(s.dtype):
        s = s.astype(np.float64)
    if not pd.api.types.is_numeric_dtype(s.dtype):
        raw = s.astype("str").str.strip()
        raw = raw.mask(raw == "", None)
        if decimal != ".":
            # '.' is then only a thousands separator (1.234,50): reject '2.5', which would silently become 25
            grouped = raw.str.contains(".", regex=False).fillna(False).to_numpy(dtype=bool)
            if grouped.any():
                ok = raw.str.fullmatch(r"[-+]?\d{1,3}(\.\d{3})+(" + re.escape(decimal) + r"\d*)?").fillna(False)
                wrong = grouped & ~ok.to_numpy(dtype=bool)
                if wrong.any():
                    raise DataError(f"expected numbers with decimal mark {decimal!r}, found {_sample(raw, wrong)}",
                                    table=table, column=column, rows=_rows(wrong))
            raw = raw.str.replace(".", "", regex=False).str.replace(decimal, ".", regex=False)
        num = pd.to_numeric(raw, errors="coerce")
        bad = (num.isna() & raw.notna()).to_numpy()
        if bad.any():
            raise DataError(f"expected numbers, found {_sample(raw, bad)}", table=table, column=column,
                            rows=_rows(bad))
        s = num
    out = s.astype(np.float64)
    vals = out.to_numpy()
    inf = np.isinf(vals)
    if inf.any():
        raise DataError("numbers overflow (infinite or beyond float64 range)", table=table, column=column,
                        rows=_rows(inf))
    if required:
        nan = np.isnan(vals)
        if nan.any():
            raise DataError("missing numbers", table=table, column=column, rows=_rows(nan))
    return out


def cast_bool(series: pd.Series, table: str, column: str) -> pd.Series:
    s = series
    if pd.api.types.is_bool_dtype(s.dtype) and not s.isna().any():
        return s.astype(bool)
    low = s.astype("str").str.strip().str.lower()
    low = low.fillna("")
    ok = low.isin(_TRUE | _FALSE).to_numpy()
    if not ok.all():
        raise DataError(f"expected true/false, yes/no or 1/0, found {_sample(s, ~ok)}", table=table, column=column,
                        rows=_rows(~ok))
    return low.isin(_TRUE).astype(bool)


def cast_int(series: pd.Series, table: str, column: str) -> pd.Series:
    f = cast_float(series, table, column, required=False)
    vals = f.to_numpy()
    frac = np.isfinite(vals) & (np.mod(vals, 1.0) != 0)
    if frac.any():
        raise DataError("expected whole numbers", table=table, column=column, rows=_rows(frac))
    return f.astype("Int64")


def mapped_columns(columns, schema: TableSchema, mapping: Mapping[str, str] | None) -> dict[str, str]:
    """``{canonical name: input column}`` for an input with ``columns``: the column mapping's checks (no
    duplicate names, mapping names known fields and existing columns, every required field present) on
    names only, so the pandas and the Spark paths apply one rule. Unmapped columns with canonical names are
    kept; the first input column for a canonical name wins."""
    cols = [str(c) for c in columns]
    seen: set[str] = set()
    dup = sorted({c for c in cols if c in seen or seen.add(c)})
    if dup:
        raise DataError(f"duplicate column names: {dup}", table=schema.name)
    mapping = dict(mapping or {})
    unknown = [k for k in mapping if k not in schema.columns]
    if unknown:
        raise DataError(f"column mapping names unknown fields {unknown}; known: {sorted(schema.columns)}",
                        table=schema.name)
    missing_src = [v for v in mapping.values() if v not in cols]
    if missing_src:
        raise DataError(f"mapped columns not found in the input: {missing_src}; input has {cols[:20]}",
                        table=schema.name)
    rename = {src: canon for canon, src in mapping.items()}
    chosen: dict[str, str] = {}
    for col in cols:
        canon = rename.get(col, col if col not in mapping.values() else None)
        if canon in schema.columns and canon not in chosen:
            chosen[canon] = col
    missing = [c for c in schema.required if c not in chosen]
    if missing:
        raise DataError(f"missing required columns {missing}; input has {cols[:20]} "
                        "(map your column names with a column mapping)", table=schema.name)
    return chosen


def apply_mapping(df: pd.DataFrame, schema: TableSchema, mapping: Mapping[str, str] | None) -> pd.DataFrame:
    """Rename user columns to canonical names and keep only known columns (:func:`mapped_columns`)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}", table=schema.name)
    chosen = mapped_columns(df.columns, schema, mapping)
    pos = {c: i for i, c in reversed(list(enumerate(map(str, df.columns))))}
    return pd.DataFrame({canon: df.iloc[:, pos[src]].reset_index(drop=True) for canon, src in chosen.items()},
                        index=pd.RangeIndex(len(df)))


def cast_table(df: pd.DataFrame, schema: TableSchema, *, time_format: str | None = None,
               decimal: str = ".") -> pd.DataFrame:
    """Cast every canonical column of ``df`` to its contract type."""
    out = {}
    for col in df.columns:
        kind = schema.columns[col]
        required = col in schema.required
        s = df[col]
        if kind == "id":
            out[col] = cast_ids(s, schema.name, col)
        elif kind == "str":
            out[col] = cast_ids(s, schema.name, col)
        elif kind == "time":
            out[col] = cast_time(s, schema.name, col, time_format=time_format, required=required)
        elif kind == "float":
            out[col] = cast_float(s, schema.name, col, decimal=decimal, required=required)
        elif kind == "bool":
            out[col] = cast_bool(s, schema.name, col)
        elif kind == "int":
            out[col] = cast_int(s, schema.name, col)
        else:  # pragma: no cover
            raise AssertionError(kind)
    return pd.DataFrame(out, index=df.index)


def check_key(df: pd.DataFrame, schema: TableSchema) -> None:
    key = schema.key
    if key is None:
        return
    missing = df[key].isna().to_numpy()
    if missing.any():
        raise DataError("empty ids", table=schema.name, column=key, rows=_rows(missing))
    dup = df[key].duplicated(keep=False).to_numpy()
    if dup.any():
        raise DataError(f"duplicate keys ({_sample(df[key], dup)})", table=schema.name, column=key, rows=_rows(dup))


def prepare_table(df: pd.DataFrame | None, name: str, mapping: Mapping[str, str] | None = None, *,
                  time_format: str | None = None, decimal: str = ".") -> pd.DataFrame | None:
    """Map, cast and key-check an auxiliary table (items, customers, offers, exposures)."""
    if df is None:
        return None
    schema = TABLES[name]
    mapped = apply_mapping(df, schema, mapping)
    cast = cast_table(mapped, schema, time_format=time_format, decimal=decimal)
    if schema.key is None:
        for col, kind in schema.required.items():
            if kind == "id":
                miss = cast[col].isna().to_numpy()
                if miss.any():
                    raise DataError("empty ids", table=name, column=col, rows=_rows(miss))
    check_key(cast, schema)
    return cast
