"""Consent: the channels, and the one rule for who may be contacted or personalized.

Consent flags are parsed once, by the :class:`~personalize.data.Dataset`
(``consent_email`` / ``consent_sms`` / ``consent_personalization`` in the
customers table: true/false, yes/no or 1/0, anything else is a
:class:`~personalize.errors.DataError` naming the rows). Everything after
that works on booleans: a customer missing from the customers table, or with
an empty flag, has not consented. A customer flagged ``suppressed`` (the
global suppression list) is never contacted or offered anything, whatever
her consent. Nothing here parses text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from personalize.errors import DataError, MissingComponentError, PersonalizeError

CONSENT_CHANNELS = ("email", "sms", "personalization")
#: the customers table's global do-not-contact flag
SUPPRESSED = "suppressed"


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
    return consent_flags(table[col]).to_numpy(dtype=bool) & ~suppressed_mask(table)


def suppressed_mask(table: pd.DataFrame) -> np.ndarray:
    """Rows on the global suppression list (the customers table's ``suppressed`` flag): never contacted, never
    in an export, never offered anything, whatever their consent."""
    if SUPPRESSED not in table.columns:
        return np.zeros(len(table), bool)
    return consent_flags(table[SUPPRESSED].rename(SUPPRESSED)).to_numpy(dtype=bool)


#: offer channels, and the consent each needs: (consent channel, True = an explicit yes is needed). E-mail and
#: SMS are opt-in; on-site channels (web, app) are allowed unless the customer refused personalization.
OFFER_CHANNEL_CONSENT = {"email": ("email", True), "sms": ("sms", True), "web": ("personalization", False),
                         "app": ("personalization", False)}
#: the offer channel an audience export through a consent channel stands for
AUDIENCE_CHANNEL = {"email": "email", "sms": "sms", "personalization": "web"}


def flags_allow(values: np.ndarray | None, opt_in: bool, n: int) -> np.ndarray:
    """The one rule on parsed flags (True / False / missing): ``opt_in`` needs an explicit True; otherwise
    only an explicit False refuses. ``values=None`` (no consent data at all) refuses opt-in channels only."""
    if values is None:
        return np.zeros(n, bool) if opt_in else np.ones(n, bool)
    v = pd.Series(values, dtype=object)
    if opt_in:
        return v.map(lambda x: x is True or x is np.True_).to_numpy(dtype=bool)
    return ~v.map(lambda x: x is False or x is np.False_).to_numpy(dtype=bool)


def channel_allowed(flags: dict[str, np.ndarray | None], channel: str, n: int) -> np.ndarray:
    """Which of ``n`` customers an offer may reach through ``channel`` (``flags``: consent column -> parsed
    flags, or None when the table has no such column)."""
    if channel not in OFFER_CHANNEL_CONSENT:
        raise PersonalizeError(f"channel must be one of {', '.join(OFFER_CHANNEL_CONSENT)}, got {channel!r}")
    consent, opt_in = OFFER_CHANNEL_CONSENT[channel]
    return flags_allow(flags.get(consent_column(consent)), opt_in, n)


def opted_out_ids(table: pd.DataFrame | None) -> frozenset[str]:
    """Customers who refused personalization (an explicit False; missing data allows it)."""
    if table is None or "consent_personalization" not in table.columns:
        return frozenset()
    refused = ~flags_allow(table["consent_personalization"].to_numpy(dtype=object), False, len(table))
    return frozenset(table["customer_id"].to_numpy(dtype=object)[refused].tolist())

