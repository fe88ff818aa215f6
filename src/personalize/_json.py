"""One conversion of library values to JSON values (manifests, CLI output, records, exports)."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def json_scalar(v: Any) -> Any:
    """numpy / pandas scalars -> plain Python; NaN, inf, NaT and NA -> None; timestamps -> ISO 8601.

    Anything else is returned unchanged (see :func:`to_jsonable` for containers).
    """
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        ts = pd.Timestamp(v)
        return None if ts is pd.NaT else ts.isoformat()
    if isinstance(v, (_dt.datetime, _dt.date)):
        return v.isoformat()
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, str):
        return v
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def to_jsonable(obj: Any) -> Any:
    """A JSON-safe copy of ``obj``: containers recursively, scalars by :func:`json_scalar`, paths and
    anything else unknown as text (so a manifest or a ``--json`` document always serializes)."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, Path):
        return str(obj)
    v = json_scalar(obj)
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)
