"""Consent: the channels, and the one rule for who may be contacted or personalized.

Consent flags are parsed once, by the :class:`~personalize.data.Dataset`
(``consent_email`` / ``consent_sms`` / ``consent_personalization`` in the
customers table: true/false, yes/no or 1/0, anything else is a
:class:`~personalize.errors.DataError` naming the rows). Everything after
that works on booleans: a customer missing from the customers table, or with
an empty flag, has not consented. Nothing here parses text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from personalize.errors import DataError, MissingComponentError, PersonalizeError

CONSENT_CHANNELS = ("email", "sms", "personalization")


def consent_column(channel: str) -> str:
    """``consent_<channel>``; :class:`PersonalizeError` listing the channels for anything else."""
    if channel not in CONSENT_CHANNELS:
        raise PersonalizeError(f"consent must be one of {', '.join(CONSENT_CHANNELS)}, got {channel!r}")
    return f"consent_{channel}"


def consent_flags(values: pd.Series) -> pd.Series:
    """Parsed consent flags with missing values as no consent (bool). Refuses anything not already boolean."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.fillna(False).astype(bool) if values.hasnans else values.astype(bool)
    present = values.dropna()
    if len(present) and not present.map(lambda v: isinstance(v, (bool, np.bool_))).all():
        bad = present[~present.map(lambda v: isinstance(v, (bool, np.bool_)))].head(3).tolist()
        raise DataError(f"consent flags must be booleans parsed by the Dataset, found {bad}",
                        table="customers", column=str(values.name))
    return values.map(lambda v: bool(v) if isinstance(v, (bool, np.bool_)) else False).astype(bool)


def has_consent_data(table: pd.DataFrame, channel: str) -> bool:
    return consent_column(channel) in table.columns


def consent_mask(table: pd.DataFrame, channel: str) -> np.ndarray:
    """Rows of ``table`` that consented to ``channel``.

    A table without the channel's column has no consent data at all: that is
    a :class:`MissingComponentError` (a clear "cannot target anyone"), never
    a silently empty list.
    """
    col = consent_column(channel)
    if col not in table.columns:
        raise MissingComponentError(f"no consent data for '{channel}': the customer table has no '{col}' column "
                                    f"(train with a customers table that has it: `personalize train --customers`)")
    return consent_flags(table[col]).to_numpy(dtype=bool)
