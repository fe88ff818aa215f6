"""``personalize models``: list, roll back and prune the published bundles of a model store."""

from __future__ import annotations

from typing import Annotated

import typer

from personalize.commands.common import JsonOpt, emit
from personalize.store import list_versions, prune, rollback


def models_list(models: Annotated[str, typer.Option("--models", help="Model store directory.")] = "models",
                json: JsonOpt = False) -> None:
    """List published bundles (oldest first); the current one is marked."""
    rows = list_versions(models)
    human = "\n".join(f"{'*' if r['current'] else ' '} {r['version']}  {r['created_at'] or '-'}"
                      f"{'' if r['ok'] else '  UNREADABLE'}" for r in rows) or f"no bundles in {models}"
    emit({"store": models, "versions": rows}, json, human)


def models_rollback(version: Annotated[str | None, typer.Argument(help="Version (default: the previous one).")] = None,
                    models: Annotated[str, typer.Option("--models", help="Model store directory.")] = "models",
                    json: JsonOpt = False) -> None:
    """Point CURRENT at an earlier bundle (running services pick it up on POST /v1/admin/reload)."""
    v = rollback(models, version)
    emit({"store": models, "current": v}, json, f"CURRENT -> {v}")


def models_prune(keep: Annotated[int, typer.Option(help="Versions to keep.")] = 5,
                 models: Annotated[str, typer.Option("--models", help="Model store directory.")] = "models",
                 json: JsonOpt = False) -> None:
    """Delete all but the newest N bundles (never the current one)."""
    removed = prune(models, keep=keep)
    emit({"store": models, "removed": removed}, json, f"removed {len(removed)} version(s)")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="List, roll back and prune published model bundles.", no_args_is_help=True)
    group.command("list")(models_list)
    group.command("rollback")(models_rollback)
    group.command("prune")(models_prune)
    app.add_typer(group, name="models")
