"""One call's context: what was asked (customers, k, exclusions, eligible items, filters, live events).

The scoring hook of every model receives the :class:`Query` of the call, so a
model that needs more than a customer's history (TwoStage picks its ranker
by the exclusion mode and asks its generators under the same rules) reads it
from there instead of from hidden per-thread state.

Exclusion modes have one vocabulary, shared by the library, the runtime and
the HTTP API: ``"purchased"`` (drop every item the customer bought),
``"non_repeatable"`` (drop bought items not flagged ``repeatable``),
``"none"`` (drop nothing) and, for a model's own calls, ``"auto"`` (the
model's default). Python's ``None`` is accepted as ``"none"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from personalize.errors import ParameterError
from personalize.recommenders.filters import Filters
from personalize.recommenders.live import LiveEvents

EXCLUDE_MODES = ("purchased", "non_repeatable", "none")


def resolve_exclude(exclude, default: str = "none") -> str:
    """``exclude`` as one of :data:`EXCLUDE_MODES` (``"auto"`` -> ``default``, None -> ``"none"``)."""
    if exclude is None:
        return "none"
    if isinstance(exclude, str):
        if exclude == "auto":
            return default
        if exclude in EXCLUDE_MODES:
            return exclude
    raise ParameterError(f"exclude must be one of {', '.join(repr(m) for m in EXCLUDE_MODES)} or 'auto', "
                         f"got {exclude!r}")


def check_k(k, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"{name} must be a positive integer, got {k!r}")
    return int(k)


@dataclass(frozen=True)
class Query:
    """The full context of one recommend / score call (indices are the model's)."""

    customers: np.ndarray            # the customer ids asked for (object array of str)
    k: int
    exclude: str                     # one of EXCLUDE_MODES
    candidates: np.ndarray | None    # bool mask over the model's items (filters and `items` combined); None = all
    filters: Filters | None = None
    live: LiveEvents | None = None
    top_up: bool = True              # fill short lists from the fallback chain (False: the model's own items only)

    def replace(self, **changes) -> "Query":
        fields = {"customers": self.customers, "k": self.k, "exclude": self.exclude, "candidates": self.candidates,
                  "filters": self.filters, "live": self.live, "top_up": self.top_up}
        fields.update(changes)
        return Query(**fields)
