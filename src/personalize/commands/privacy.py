"""``personalize forget``: the right to erasure, from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personalize.commands.common import JsonOpt, emit
from personalize.errors import PersonalizeError


def forget(customer_ids: Annotated[list[str], typer.Argument(help="Customer id(s) to erase.")],
           models: Annotated[str, typer.Option("--models", help="Model store directory.")] = "models",
           events_db: Annotated[str | None, typer.Option("--events-db", help="Event store (default "
                                                         "<models>/events.sqlite).")] = None,
           json: JsonOpt = False) -> None:
    """Erase customers: their events are deleted and a salted hash joins the store's erasure list. Running
    services treat them as unknown within a second; every later `personalize train` drops them."""
    from personalize.store.events import EventStore, default_events_path

    path = Path(events_db) if events_db else default_events_path(models)
    if not path.parent.is_dir():
        raise PersonalizeError(f"model store {path.parent} does not exist")
    with EventStore(path) as store:
        result = store.forget(customer_ids)
    emit({"store": str(path), **result}, json,
         f"erased {result['customers']} customer(s); {result['events_deleted']} stored event(s) deleted")


def register(app: typer.Typer) -> None:
    app.command("forget")(forget)
