"""Next-best-offer, precomputed: every customer's P(accept), value and expected value of every offer.

``EV(customer, offer) = P(accept) x (basket margin - redemption cost)``: the
margin of the basket an accepting customer buys (her typical order, at
least the offer's minimum spend, times her margin rate) less what the offer
costs on it (:meth:`OfferCatalog.redemption_cost`). An offer is worth
showing when its EV is positive; "no offer" is a valid answer when none is.

:class:`OfferScores` (bundle component ``offers``) holds, for the customers
of the bundle as of its data end: ``p`` and ``value`` (``(customers,
offers)`` float32), the static part of the contact policy per channel
(segment / tier / lifecycle / category / order rules, affinity, consent,
suppression: a reason code per pair and channel, 0 = eligible), exposure
counts and the last contact time from the exposures table. What changes
while serving -- validity as of now, caps and cooldowns from live exposure
events, erasures -- is applied per request (:meth:`OfferScores.rank`), so a
request costs a few small vector operations over the catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize._arrayfiles import load_arrays, save_arrays
from personalize._atomic import atomic_write
from personalize.errors import BundleError, DataError, PersonalizeError
from personalize.offers.acceptance import AcceptanceModel
from personalize.offers.catalog import CHANNELS, OfferCatalog
from personalize.offers.eligibility import REASONS, ContactPolicy, CustomerState, eligibility
from personalize.offers.features import Economics, customer_frame, economics, pair_features

if TYPE_CHECKING:
    from personalize.data import Dataset
    from personalize.recommenders import CandidateTable

__all__ = ["OfferScores", "CandidateAffinity", "score_offers", "offer_rows", "assemble_offer_scores",
           "exposure_history", "affinity_targets"]

_R = {name: i for i, name in enumerate(REASONS)}
_STATIC_LAST = _R["no_affinity"]  # reasons up to here are computed at train time; later ones per request
_NS_DAY = 86_400 * 10**9


def affinity_targets(catalog: OfferCatalog, cands: CandidateTable) -> dict[int, np.ndarray]:
    """Per targeted offer (index into the catalog), which of ``cands``' items are in its target (its items or
    its category): a bool array over ``cands.item_ids`` plus a last False slot for the -1 padding."""
    out = {}
    cat_of = cands.catalog.category_codes
    for j in range(len(catalog)):
        if not catalog.targeted[j]:
            continue
        want = np.zeros(len(cands.item_ids) + 1, bool)  # last slot: the -1 padding
        if catalog.target_items[j]:
            pos = cands.item_index.get_indexer(list(catalog.target_items[j]))
            want[pos[pos >= 0]] = True
        if catalog.target_category[j] is not None:
            code = cands.catalog.category_index.get_indexer([catalog.target_category[j]])[0]
            if code >= 0:
                want[:-1] |= cat_of == code
        out[j] = want
    return out


class CandidateAffinity:
    """Which customers have a targeted offer's target (its items or its category) among their precomputed
    recommendations: all that the offer scores need of a :class:`~personalize.recommenders.CandidateTable`
    (a bool per customer and targeted offer, 10 MB for a million customers and ten offers, where the table
    takes gigabytes). ``personalize train`` keeps this and frees the table once it is written."""

    def __init__(self, customer_ids: np.ndarray, offer_ids: list[str], hits: np.ndarray) -> None:
        self.customer_ids = np.asarray(customer_ids, dtype=object)
        self.offer_ids = [str(o) for o in offer_ids]
        self.hits = np.asarray(hits, dtype=bool)  # customers x offer_ids

    @classmethod
    def from_table(cls, catalog: OfferCatalog, cands: CandidateTable, *, batch: int = 100_000) -> CandidateAffinity:
        targets = affinity_targets(catalog, cands)
        n = len(cands.customer_ids)
        hits = np.zeros((n, len(targets)), bool)
        for k, want in enumerate(targets.values()):
            for start in range(0, n, batch):  # a batch's item codes at a time
                hits[start:start + batch, k] = want[cands.items[start:start + batch]].any(axis=1)
        return cls(cands.customer_ids.astype(object), [str(catalog.offer_ids[j]) for j in targets], hits)

    def apply(self, catalog: OfferCatalog, aff: np.ndarray, customer_ids: np.ndarray) -> np.ndarray:
        """``aff`` (customers of ``customer_ids`` x offers of ``catalog``) or-ed with the candidate hits."""
        rows = pd.Index(self.customer_ids).get_indexer(np.asarray(customer_ids, dtype=object))
        ok = rows >= 0
        col = {o: k for k, o in enumerate(self.offer_ids)}
        for j, oid in enumerate(catalog.offer_ids):
            k = col.get(str(oid))
            if k is None:
                continue
            hit = np.zeros(len(rows), bool)
            hit[ok] = self.hits[rows[ok], k]
            aff[:, j] |= hit
        return aff


def _affinity(catalog: OfferCatalog, econ_bought: np.ndarray, cands: CandidateTable | CandidateAffinity | None,
              customer_ids: np.ndarray) -> np.ndarray:
    """Bought in the offer's target, or has a target item among the precomputed recommendations."""
    aff = econ_bought.copy()
    if cands is None:
        return aff
    if not isinstance(cands, CandidateAffinity):
        cands = CandidateAffinity.from_table(catalog, cands)
    return cands.apply(catalog, aff, customer_ids)


class OfferScores:
    """Precomputed next-best-offer scores of a bundle (see the module docstring)."""

    bundle_kind = "offers"

    def __init__(self, *, catalog: OfferCatalog, customer_ids: np.ndarray, p: np.ndarray, value: np.ndarray,
                 static: np.ndarray, exposures: np.ndarray, last_contact_ns: np.ndarray, fallback: np.ndarray,
                 cold_p: np.ndarray, cold_value: np.ndarray, cold_static: np.ndarray, as_of: str,
                 policy: dict) -> None:
        self.catalog = catalog
        self.customer_ids = customer_ids
        self.p, self.value = p, value
        self.static = static                     # (customers, offers, channels) int8 reason codes
        self.exposures = exposures               # (customers, offers) int32
        self.last_contact_ns = last_contact_ns   # (customers,) int64, 0 = never
        self.fallback = fallback                 # (offers,) bool: P(accept) from the kind's rate x affinity
        self.cold_p, self.cold_value, self.cold_static = cold_p, cold_value, cold_static
        self.as_of = as_of
        self.policy = ContactPolicy(**policy)
        self.pos = {str(c): i for i, c in enumerate(customer_ids.tolist())}

    @property
    def ev(self) -> np.ndarray:
        return self.p * self.value

    def row(self, customer_id: str) -> int:
        return self.pos.get(customer_id, -1)

    def index_of(self, customer_ids) -> np.ndarray:
        """Rows of many customers (-1 for unknown ones)."""
        return pd.Index(self.customer_ids).get_indexer(np.asarray(customer_ids, dtype=object))

    # ------------------------------------------------------------------ per request
    def rank(self, customer_id: str | None, *, channel: str, n: int, now: pd.Timestamp,
             live_exposures: dict[int, int] | None = None, live_last_contact_ns: int | None = None,
             personal: bool = True) -> dict:
        """The customer's top ``n`` offers with EV > 0 (possibly none) and why the others were not shown.

        ``customer_id=None`` (or an id the bundle does not know) gets the cold answer: the offers
        ranked for an average customer, under the rules an unknown customer meets.
        ``personal=False`` (a known customer who refused personalization): the average customer's
        ranking, under her own consent, suppression, caps and cooldown.
        """
        if channel not in CHANNELS:
            raise DataError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}", column="channel")
        ch = CHANNELS.index(channel)
        r = self.row(customer_id) if customer_id is not None else -1
        cat = self.catalog
        if r >= 0:
            p, value = (self.p[r], self.value[r]) if personal else (self.cold_p, self.cold_value)
            reason = self.static[r, :, ch].astype(np.int8)
            exposed = self.exposures[r].astype(np.int64)
            last = int(self.last_contact_ns[r])
        else:
            p, value, reason = self.cold_p, self.cold_value, self.cold_static[:, ch].astype(np.int8)
            exposed = np.zeros(len(cat), np.int64)
            last = 0
        reason = reason.copy()
        if live_exposures:
            exposed = exposed.copy()
            for j, k in live_exposures.items():
                exposed[j] += k
        if live_last_contact_ns:
            last = max(last, int(live_last_contact_ns))
        free = reason == 0
        not_started, expired = cat.active(now)
        for mask, name in ((not_started, "not_started"), (expired, "expired"), (exposed >= cat.cap, "cap_reached")):
            hit = free & mask
            reason[hit] = _R[name]
            free &= ~hit
        cooldown = self.policy.cooldown_days
        if last and cooldown > 0 and (pd.Timestamp(now).value - last) < cooldown * _NS_DAY:
            reason[free] = _R["cooldown"]
            free[:] = False
        ev = p * value
        pays = free & (ev > 0)
        reason[free & ~pays] = -1  # eligible, but does not pay
        order = np.flatnonzero(pays)[np.argsort(-ev[pays], kind="stable")][:n]
        offers = [{"offer_id": str(cat.offer_ids[j]), "description": cat.describe(j), "kind": str(cat.kinds[j]),
                   "p_accept": float(p[j]), "value": float(value[j]), "expected_value": float(ev[j]),
                   "rank": k + 1,
                   "reasons": [f"P(accept) {p[j]:.1%}" + (" (few exposures: the kind's rate x affinity)"
                                                          if self.fallback[j] else ""),
                               f"worth {value[j]:.2f} per acceptance (basket margin less the offer's cost)"]}
                  for k, j in enumerate(order.tolist())]
        held = {}
        for code in reason[~pays].tolist():
            name = "does_not_pay" if code == -1 else REASONS[code]
            held[name] = held.get(name, 0) + 1
        return {"offers": offers, "not_shown": held, "known": r >= 0}

    # ------------------------------------------------------------------ persistence
    _ARRAYS = ("customer_ids", "p", "value", "static", "exposures", "last_contact_ns", "fallback", "cold_p",
               "cold_value", "cold_static")

    def save(self, directory) -> None:
        arrays = {k: getattr(self, k) for k in self._ARRAYS}
        arrays["customer_ids"] = np.asarray(self.customer_ids, dtype=str)
        d = save_arrays(directory, arrays, {"kind": "offers", "as_of": self.as_of, "policy": self.policy.get_params(),
                                            "offer_ids": [str(o) for o in self.catalog.offer_ids]})
        atomic_write(d / "catalog.parquet", lambda fh: self.catalog.to_frame().to_parquet(fh, index=False))

    @classmethod
    def load(cls, directory) -> "OfferScores":
        unreadable = "offer scores in {dir} are unreadable"
        meta, a = load_arrays(directory, cls._ARRAYS, unreadable)
        try:
            catalog = OfferCatalog(pd.read_parquet(Path(directory) / "catalog.parquet"))
        except (OSError, KeyError, ValueError) as exc:
            raise BundleError(f"{unreadable.format(dir=Path(directory))}: {exc}") from None
        return cls(catalog=catalog, **a, as_of=meta["as_of"], policy=meta["policy"])


def score_offers(ds: Dataset, catalog: OfferCatalog, model: AcceptanceModel, customers: pd.DataFrame, *,
                 as_of: pd.Timestamp, candidates: CandidateTable | CandidateAffinity | None = None,
                 policy: ContactPolicy | None = None,
                 batch: int = 50_000, features: tuple[Economics, pd.DataFrame] | None = None) -> OfferScores:
    """Score every customer of the customer table against every offer as of ``as_of`` (see module docstring).

    ``features``: ``(economics, customer_frame)`` of the table's customers as of ``as_of`` when the caller has
    them already (the coupon scoring needs the same), computed here otherwise."""
    policy = policy or ContactPolicy()
    ids = customers["customer_id"].astype(str).to_numpy(dtype=object)
    if features is None:
        econ = economics(ds, catalog, as_of, customer_ids=ids)
        cust = customer_frame(ds, as_of, econ)
    else:
        econ, cust = features
        if len(econ.customer_ids) != len(ids) or (econ.customer_ids != ids).any():
            raise PersonalizeError("score_offers: the features given are not of the customer table's customers")
    aff = _affinity(catalog, econ.bought, candidates, ids)
    exp_counts, last_ns = exposure_history(ds.exposures, catalog, ids, as_of)
    state = CustomerState.from_table(customers, affinity=aff)
    p, value, fb, static = offer_rows(catalog, model, cust, econ, state, policy, batch=batch)
    return assemble_offer_scores(catalog, ids, p=p, value=value, static=static, exposures=exp_counts,
                                 last_contact_ns=last_ns, fallback=fb, known=np.isfinite(econ.aov), as_of=as_of,
                                 policy=policy)


def offer_rows(catalog: OfferCatalog, model: AcceptanceModel, cust: pd.DataFrame, econ: Economics,
               state: CustomerState, policy: ContactPolicy, *, batch: int = 50_000
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(p, value, fallback, static)`` of some customers (rows of ``econ`` / ``cust`` / ``state``, whose
    ``affinity`` is set): P(accept) and value of every offer, which offers used the fallback, and the static
    reason codes per channel. Each row depends on that customer only (the Spark path runs it per partition)."""
    n, m = len(econ.customer_ids), len(catalog)
    p = np.zeros((n, m), np.float32)
    value = np.zeros((n, m), np.float32)
    fb = np.zeros(m, bool)
    margin = np.nan_to_num(econ.margin_rate, nan=0.3)
    values = cust.to_numpy(np.float64)  # once, not once per batch
    for start in range(0, n, batch):
        rows = np.arange(start, min(start + batch, n))
        rr, oo = np.repeat(rows, m), np.tile(np.arange(m), len(rows))
        have = np.isfinite(econ.aov[rr])
        X = pair_features(catalog, cust, econ, np.where(have, rr, -1), oo, values=values)
        pp, f = model.predict_pairs(X, oo, catalog)
        fb[oo[f]] = True
        basket = np.maximum(np.nan_to_num(econ.aov[rr], nan=0.0), catalog.min_spend[oo])
        cost = catalog.redemption_cost(basket, oo, np.nan_to_num(econ.share[rr, oo], nan=1.0))
        p[rows] = pp.reshape(len(rows), m)
        value[rows] = (basket * margin[rr] - cost).reshape(len(rows), m)
    static = np.zeros((n, m, len(CHANNELS)), np.int8)
    no_dynamic = ContactPolicy(cooldown_days=0, require_affinity=policy.require_affinity)
    for c, channel in enumerate(CHANNELS):
        _ok, reason = eligibility(catalog, state, when=None, channel=channel, policy=no_dynamic)
        reason[reason > _STATIC_LAST] = 0       # validity, caps and cooldowns are applied per request
        static[:, :, c] = reason
    return p, value, fb, static


def assemble_offer_scores(catalog: OfferCatalog, customer_ids: np.ndarray, *, p: np.ndarray, value: np.ndarray,
                          static: np.ndarray, exposures: np.ndarray, last_contact_ns: np.ndarray,
                          fallback: np.ndarray, known: np.ndarray, as_of, policy: ContactPolicy) -> OfferScores:
    """:class:`OfferScores` from every customer's rows (:func:`offer_rows`, :func:`exposure_history`):
    adds the cold answer (mean P(accept) and median value of the customers with a history, and the rules
    an unknown customer meets)."""
    m = len(catalog)
    no_dynamic = ContactPolicy(cooldown_days=0, require_affinity=policy.require_affinity)
    cold_state = CustomerState(customer_ids=np.array(["\x00cold"], dtype=object))
    cold_static = np.zeros((m, len(CHANNELS)), np.int8)
    for c, channel in enumerate(CHANNELS):
        _ok, reason = eligibility(catalog, cold_state, when=None, channel=channel, policy=no_dynamic)
        reason[reason > _STATIC_LAST] = 0
        cold_static[:, c] = reason[0]
    known = np.asarray(known, bool)
    cold_p = p[known].mean(axis=0) if known.any() else np.zeros(m, np.float32)
    cold_value = np.median(value[known], axis=0) if known.any() else np.zeros(m, np.float32)
    return OfferScores(catalog=catalog, customer_ids=customer_ids, p=p, value=value, static=static,
                       exposures=exposures, last_contact_ns=last_contact_ns, fallback=fallback,
                       cold_p=cold_p.astype(np.float32), cold_value=cold_value.astype(np.float32),
                       cold_static=cold_static, as_of=pd.Timestamp(as_of).isoformat(), policy=policy.get_params())


def exposure_history(exposures: pd.DataFrame | None, catalog: OfferCatalog, ids: np.ndarray, as_of: pd.Timestamp
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, last)``: exposures of each customer of ``ids`` to each offer before ``as_of`` and her last
    contact (int64 ns, 0 = never). A customer's row depends on her own exposures only."""
    n, m = len(ids), len(catalog)
    counts = np.zeros((n, m), np.int32)
    last = np.zeros(n, np.int64)
    exp = exposures
    if exp is None or not len(exp):
        return counts, last
    exp = exp[exp["exposed_at"] < pd.Timestamp(as_of)]
    rows = pd.Index(ids).get_indexer(exp["customer_id"].astype(str).to_numpy(dtype=object))
    offer = exp["offer_id"].astype("object").map(catalog.index).to_numpy(dtype=np.float64, na_value=np.nan)
    ok = (rows >= 0) & np.isfinite(offer)
    np.add.at(counts, (rows[ok], offer[ok].astype(np.int64)), 1)
    has = rows >= 0
    np.maximum.at(last, rows[has], exp["exposed_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)[has])
    return counts, last

