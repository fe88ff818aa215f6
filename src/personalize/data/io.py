"""Reading raw tables from CSV, Parquet and DuckDB/SQL, with clear errors.

Every column of a CSV is read as text so ids keep their leading zeros;
types are applied later, by the data contract.
"""

from __future__ import annotations

import csv
import glob
import io
import zlib
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from personalize.errors import DataError

_CANDIDATE_SEPS = [",", ";", "\t", "|"]


def _head_bytes(path: Path, n: int = 65536) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def read_csv(path: str | Path, *, sep: str | None = None, decimal: str = ".", encoding: str = "utf-8",
             table: str = "transactions") -> pd.DataFrame:
    """Read a delimited text file as strings. ``sep=None`` detects , ; tab or |; ``sep="whitespace"`` splits on runs of spaces."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}", table=table)
    if path.is_dir():
        raise DataError(f"expected a file, got a directory: {path}", table=table)
    compressed = path.suffix in (".gz", ".bz2", ".zip", ".xz", ".zst")
    if compressed:
        import gzip
        opener = gzip.open if path.suffix == ".gz" else None
        if opener is None:
            raise DataError(f"unsupported compression {path.suffix}; use .gz or uncompressed", table=table)
        with opener(path, "rb") as fh:
            try:
                head = fh.read(65536)
            except (OSError, EOFError, zlib.error) as exc:
                raise DataError(f"cannot decompress {path.name}: {exc}", table=table) from None
    else:
        head = _head_bytes(path)
    if not head.strip():
        raise DataError(f"file is empty: {path.name}", table=table)
    if b"\x00" in head:
        raise DataError(f"{path.name} is not a text file (binary data found); expected CSV text", table=table)
    enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = head.decode(enc)
    except UnicodeDecodeError:
        # a truncated multi-byte character at the end of the sample is fine
        try:
            text = head[:-4].decode(enc)
        except UnicodeDecodeError as exc:
            raise DataError(f"{path.name} is not valid {encoding} text ({exc.reason} at byte {exc.start}); "
                            "pass the file's encoding", table=table) from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if sep == "whitespace":
        regex_sep = r"\s+"
        header = lines[0].split()
    else:
        if sep is None:
            sep = _sniff(lines, path.name, table)
        regex_sep = None
        try:
            header = next(csv.reader([lines[0]], delimiter=sep))
        except csv.Error as exc:
            raise DataError(f"cannot read the header line: {exc}", table=table) from None
    header = [h.strip() for h in header]
    if any(h == "" for h in header):
        raise DataError(f"empty column name in the header ({header[:10]})", table=table)
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise DataError(f"duplicate column names: {dups}", table=table)
    if len(lines) < 2:
        raise DataError(f"no data rows (header only): {path.name}", table=table)
    try:
        df = pd.read_csv(path, sep=regex_sep or sep, dtype=str, keep_default_na=False, na_values=[""],
                         encoding=enc, engine="python" if regex_sep else "c", skipinitialspace=True,
                         on_bad_lines="error")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name} is not valid {encoding} text ({exc.reason}); pass the file's encoding",
                        table=table) from None
    except pd.errors.ParserError as exc:
        msg = str(exc).strip().splitlines()[-1]
        raise DataError(f"malformed CSV in {path.name}: {msg}", table=table) from None
    except (csv.Error, ValueError) as exc:
        raise DataError(f"cannot read {path.name}: {exc}", table=table) from None
    except (OSError, EOFError, zlib.error) as exc:  # a compressed file corrupted after its first block
        raise DataError(f"cannot decompress {path.name}: {exc}", table=table) from None
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise DataError(f"no data rows (header only): {path.name}", table=table)
    if decimal != ".":
        df.attrs["decimal"] = decimal
    return df


def _sniff(lines: list[str], name: str, table: str) -> str:
    sample = "\n".join(lines[:50])
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters="".join(_CANDIDATE_SEPS))
        if dialect.delimiter in _CANDIDATE_SEPS:
            return dialect.delimiter
    except csv.Error:
        pass
    # fall back: the candidate that splits the header and the first lines into the same number (>1) of fields
    for cand in _CANDIDATE_SEPS:
        counts = {len(next(csv.reader([ln], delimiter=cand))) for ln in lines[:20]}
        if len(counts) == 1 and counts.pop() > 1:
            return cand
    # only one candidate splits the header: use it, so a ragged row is reported by its line number
    in_header = [c for c in _CANDIDATE_SEPS if len(next(csv.reader([lines[0]], delimiter=c))) > 1]
    if len(in_header) == 1:
        return in_header[0]
    if len(lines) >= 1 and not any(c in lines[0] for c in _CANDIDATE_SEPS):
        raise DataError(f"could not detect the delimiter of {name}: the header has no , ; tab or | "
                        "(pass the delimiter explicitly, e.g. --sep ';')", table=table)
    raise DataError(f"could not detect the delimiter of {name}: rows have inconsistent field counts "
                    "(pass the delimiter explicitly, e.g. --sep ';')", table=table)


def read_parquet(path: str | Path, *, table: str = "transactions") -> pd.DataFrame:
    """Read one Parquet file, or every file matching a glob pattern (through DuckDB)."""
    p = str(path)
    if any(ch in p for ch in "*?["):
        if not glob.glob(p):
            raise DataError(f"no files match {p}", table=table)
        return read_sql(f"SELECT * FROM read_parquet({_sql_str(p)})", table=table)
    path = Path(p)
    if not path.exists():
        raise DataError(f"file not found: {path}", table=table)
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"cannot read Parquet file {path.name}: {str(exc).splitlines()[0]}", table=table) from None
    if len(df) == 0:
        raise DataError(f"no data rows: {path.name}", table=table)
    return df


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def read_sql(query: str, *, database: str | Path | None = None, setup: Sequence[str] = (),
             table: str = "transactions") -> pd.DataFrame:
    """Run a DuckDB query (optionally against a DuckDB database file, after ``setup`` statements such as ATTACH)."""
    import duckdb

    if database is not None and not Path(database).exists():
        raise DataError(f"database file not found: {database}", table=table)
    try:
        con = duckdb.connect(str(database) if database is not None else ":memory:",
                             read_only=database is not None)
    except duckdb.Error as exc:
        raise DataError(f"cannot open DuckDB database {database}: {exc}", table=table) from None
    try:
        for stmt in setup:
            con.execute(stmt)
        df = con.sql(query).df()
    except duckdb.Error as exc:
        raise DataError(f"SQL query failed: {str(exc).splitlines()[0]}", table=table) from None
    finally:
        con.close()
    if len(df) == 0:
        raise DataError("the SQL query returned no rows", table=table)
    return df


def read_any(path: str | Path, *, sep: str | None = None, decimal: str = ".", encoding: str = "utf-8",
             table: str = "transactions", query: str | None = None) -> pd.DataFrame:
    """Dispatch on the file name: .parquet/.pq (or a glob of them), .duckdb/.db (with ``query``), else CSV."""
    p = str(path)
    low = p.lower()
    if low.endswith((".parquet", ".pq")):
        return read_parquet(p, table=table)
    if low.endswith((".duckdb", ".db")):
        if not query:
            raise DataError("a DuckDB database needs a query (e.g. --query 'SELECT * FROM sales')", table=table)
        return read_sql(query, database=p, table=table)
    return read_csv(p, sep=sep, decimal=decimal, encoding=encoding, table=table)


__all__ = ["read_csv", "read_parquet", "read_sql", "read_any", "io"]
