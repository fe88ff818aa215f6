"""Real-time events: stored durably, purchases applied to the served model at once."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from personalize.store.events import Event
from serving.deps import EventsCtx, limit
from serving.schemas import EventsIn, EventsOut

router = APIRouter(tags=["events"])


@router.post("/events", response_model=EventsOut)
async def post_events(body: EventsIn, ctx: EventsCtx) -> EventsOut:
    """Append events to the event store; acknowledged only after the commit is on disk."""
    state, max_list = ctx.state, ctx.settings.max_list
    limit(len(body.events) <= max_list, "events", f"at most {max_list} events per request", "body")
    now = dt.datetime.now(dt.timezone.utc)
    events = [Event(type=e.type, customer_id=e.customer_id, item_id=e.item_id, quantity=e.quantity, price=e.price,
                    timestamp=e.timestamp or now, order_id=e.order_id) for e in body.events]
    ids = await run_in_threadpool(state.append_events, events)
    applied = await run_in_threadpool(state.apply_purchases, events)
    return EventsOut(accepted=len(ids), ids=ids, purchases_applied=applied)
