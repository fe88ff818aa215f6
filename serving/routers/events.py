"""Real-time events: checked against the data contract, stored durably and idempotently, purchases applied at once."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from personalize.errors import DataError
from personalize.store.events import LEDGER_EVENTS, OFFER_EVENTS, Event, check_events
from serving.deps import EventsCtx, limit
from serving.schemas import AUTH_ERRORS, EventResult, EventsIn, EventsOut, error_responses

router = APIRouter(tags=["events"], responses=AUTH_ERRORS)

_LEDGER_FIELDS = ("kind", "score", "scale", "channel", "category", "resolved", "resolved_at", "text", "delta",
                  "reason", "expires_at")


def _invalid(i: int, field: str | None, message: str) -> HTTPException:
    loc = ["body", "events", i] + ([field] if field else [])
    return HTTPException(422, [{"loc": loc, "msg": message, "type": "value_error"}])


@router.post("/events", response_model=EventsOut, responses=error_responses(413))
async def post_events(body: EventsIn, ctx: EventsCtx) -> EventsOut:
    """Store events (acknowledged only after the commit is on disk) and report each one's outcome.

    A request with an event the data contract rejects (a timestamp more than a day ahead, an empty or
    malformed id, a non-positive quantity, an exposure without offer_id, a feedback score outside its scale, a
    redemption beyond the points balance) is a 422 naming it, and nothing is stored. Exposures and redemptions
    count against the offers' caps and the contact cooldown at once; feedback and points events show in the
    profile, the audiences and (a 1-2 star rating) the recommendations at once. Retries are safe: an event whose
    `event_id`, or whose `order_id` + item, is already stored is reported as `duplicate`.
    """
    state, max_list = ctx.state, ctx.settings.max_list
    limit(len(body.events) <= max_list, "events", f"at most {max_list} events per request", "body")
    rt = ctx.runtime
    now = dt.datetime.now(dt.timezone.utc)
    results: list[EventResult | None] = [None] * len(body.events)
    for i, e in enumerate(body.events):
        if e.type in OFFER_EVENTS:
            limit(e.offer_id is not None, f"events.{i}.offer_id", f"a {e.type} event needs offer_id", "body")
        elif e.type == "feedback":
            if e.kind is None:
                raise _invalid(i, "kind", "a feedback event needs kind")
        elif e.type == "points":
            for f in ("delta", "reason"):
                if getattr(e, f) is None:
                    raise _invalid(i, f, f"a points event needs {f}")
        else:
            limit(e.item_id is not None, f"events.{i}.item_id", f"a {e.type} event needs item_id", "body")
        if e.type not in LEDGER_EVENTS:
            for f in _LEDGER_FIELDS:
                if getattr(e, f) is not None:
                    raise _invalid(i, f, f"{f} applies to feedback and points events only")
    keep, events = [], []
    for i, e in enumerate(body.events):
        if e.customer_id in state.erasures:
            results[i] = EventResult(index=i, status="ignored", reason="erased_customer")
            continue
        keep.append(i)
        events.append(Event(type=e.type, customer_id=e.customer_id, item_id=e.item_id, quantity=e.quantity,
                            price=e.price, timestamp=e.timestamp or now, order_id=e.order_id, event_id=e.event_id,
                            offer_id=e.offer_id, **{f: getattr(e, f) for f in _LEDGER_FIELDS}))
    try:
        check_events(events)
    except DataError as exc:
        raise _invalid(keep[exc.rows[0]] if exc.rows else keep[0], exc.column, exc.message) from None
    _check_balances(rt, keep, events)
    stored = await run_in_threadpool(state.append_events, events) if events else []
    applied = offers_applied = ledger_applied = 0
    for i, e, a in zip(keep, events, stored):
        if a.duplicate:
            results[i] = EventResult(index=i, id=a.id, status="duplicate", reason="duplicate")
        elif e.type in OFFER_EVENTS:
            why = rt.offer_event_reason(e.offer_id)
            offers_applied += why is None
            results[i] = EventResult(index=i, id=a.id, status="stored" if why else "applied", reason=why)
        elif e.type in LEDGER_EVENTS:
            ledger_applied += 1
            results[i] = EventResult(index=i, id=a.id, status="applied")
        elif e.type != "purchase":
            results[i] = EventResult(index=i, id=a.id, status="stored", reason="view_event")
        elif not rt.knows_item(e.item_id):
            results[i] = EventResult(index=i, id=a.id, status="stored", reason="unknown_item")
        else:
            applied += 1
            results[i] = EventResult(index=i, id=a.id, status="applied")
    new_ids = [a.id for a in stored if not a.duplicate]
    return EventsOut(accepted=len(new_ids), ids=new_ids, purchases_applied=applied,
                     offer_events_applied=offers_applied, feedback_applied=ledger_applied, results=results)


def _check_balances(rt, positions: list[int], events: list[Event]) -> None:
    """The strict points policy at the edge: points taken (redeem, expire, negative adjust) may not exceed the
    balance (the bundle's plus the events since, plus the earlier events of this request). Only when the bundle
    has a points ledger (otherwise the service does not know balances)."""
    if not rt.loyalty.has_points and not (rt.customers is not None and "points_balance" in rt.customers.columns):
        return
    running: dict[str, float] = {}
    for i, e in zip(positions, events):
        if e.type != "points":
            continue
        if e.customer_id not in running:
            running[e.customer_id] = rt.points_balance(e.customer_id)
        running[e.customer_id] += float(e.delta)
        if e.delta < 0 and running[e.customer_id] < -1e-9:
            raise _invalid(i, "delta", f"points taken beyond the balance (it would be {running[e.customer_id]:g})")
