"""Real-time events: checked against the data contract, stored durably and idempotently, purchases applied at once."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from personalize.store.events import OFFER_EVENTS, Event
from serving.deps import EventsCtx, limit
from serving.schemas import AUTH_ERRORS, EventResult, EventsIn, EventsOut, error_responses

router = APIRouter(tags=["events"], responses=AUTH_ERRORS)


@router.post("/events", response_model=EventsOut, responses=error_responses(413))
async def post_events(body: EventsIn, ctx: EventsCtx) -> EventsOut:
    """Store events (acknowledged only after the commit is on disk) and report each one's outcome.

    A request with an event the data contract rejects (a timestamp more than a day ahead, an empty or
    malformed id, a non-positive quantity, an exposure without offer_id) is a 422 naming it, and nothing is
    stored. Exposures and redemptions count against the offers' caps and the contact cooldown at once. Retries are safe: an
    event whose `event_id`, or whose `order_id` + item, is already stored is reported as `duplicate`.
    """
    state, max_list = ctx.state, ctx.settings.max_list
    limit(len(body.events) <= max_list, "events", f"at most {max_list} events per request", "body")
    rt = ctx.runtime
    now = dt.datetime.now(dt.timezone.utc)
    results: list[EventResult | None] = [None] * len(body.events)
    for i, e in enumerate(body.events):
        if e.type in OFFER_EVENTS:
            limit(e.offer_id is not None, f"events.{i}.offer_id", f"a {e.type} event needs offer_id", "body")
        else:
            limit(e.item_id is not None, f"events.{i}.item_id", f"a {e.type} event needs item_id", "body")
    keep, events = [], []
    for i, e in enumerate(body.events):
        if e.customer_id in state.erasures:
            results[i] = EventResult(index=i, status="ignored", reason="erased_customer")
            continue
        keep.append(i)
        events.append(Event(type=e.type, customer_id=e.customer_id, item_id=e.item_id, quantity=e.quantity,
                            price=e.price, timestamp=e.timestamp or now, order_id=e.order_id, event_id=e.event_id,
                            offer_id=e.offer_id))
    stored = await run_in_threadpool(state.append_events, events) if events else []
    applied = offers_applied = 0
    for i, e, a in zip(keep, events, stored):
        if a.duplicate:
            results[i] = EventResult(index=i, id=a.id, status="duplicate", reason="duplicate")
        elif e.type in OFFER_EVENTS:
            why = rt.offer_event_reason(e.offer_id)
            offers_applied += why is None
            results[i] = EventResult(index=i, id=a.id, status="stored" if why else "applied", reason=why)
        elif e.type != "purchase":
            results[i] = EventResult(index=i, id=a.id, status="stored", reason="view_event")
        elif not rt.knows_item(e.item_id):
            results[i] = EventResult(index=i, id=a.id, status="stored", reason="unknown_item")
        else:
            applied += 1
            results[i] = EventResult(index=i, id=a.id, status="applied")
    new_ids = [a.id for a in stored if not a.duplicate]
    return EventsOut(accepted=len(new_ids), ids=new_ids, purchases_applied=applied,
                     offer_events_applied=offers_applied, results=results)
