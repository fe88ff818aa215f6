"""A folder of named arrays (``arrays.npz``, no pickle) and a JSON ``meta.json``: how the bundle's
precomputed tables (offer scores, coupon options) are stored."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from personalize._atomic import atomic_write
from personalize.errors import BundleError


def save_arrays(directory, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    """Write ``arrays`` and ``meta`` into ``directory`` (created), each file atomically."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write(d / "arrays.npz", lambda fh: np.savez(fh, **arrays))
    atomic_write(d / "meta.json", lambda fh: fh.write(json.dumps(meta, indent=2)), binary=False)
    return d


def load_arrays(directory, names: Iterable[str], unreadable: str) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` written by :func:`save_arrays`; ``customer_ids`` comes back as an object array.

    Raises BundleError ``unreadable`` (with ``{dir}`` filled in) and the cause when a file is missing or bad.
    """
    d = Path(directory)
    try:
        meta = json.loads((d / "meta.json").read_text())
        with np.load(d / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in names}
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"{unreadable.format(dir=d)}: {exc}") from None
    if "customer_ids" in arrays:
        arrays["customer_ids"] = arrays["customer_ids"].astype(object)
    return meta, arrays
