"""One conversion of table cells to JSON values, for records the library hands to callers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def json_scalar(v: Any) -> Any:
    """numpy / pandas scalars -> plain Python; NaN, inf, NaT and NA -> None; timestamps -> ISO 8601."""
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        ts = pd.Timestamp(v)
        return None if ts is pd.NaT else ts.isoformat()
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, np.integer):
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
