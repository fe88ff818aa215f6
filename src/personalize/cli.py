"""The ``personalize`` command line.

Commands live in :mod:`personalize.commands` (one module per area, each with a
``register(app)``). A user mistake (any :class:`PersonalizeError`) prints one
line on stderr and exits with code 2, never a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

import personalize.commands as pkg
from personalize.errors import PersonalizeError

app = typer.Typer(name="personalize", help="Recommendations and personalization for retailers.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _register_all() -> None:
    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if mod.name == "common":
            continue
        module = importlib.import_module(f"personalize.commands.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


@app.callback()
def _root() -> None:
    """Recommendations and personalization for retailers. Run a command with --help for its options."""


_register_all()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the typer app, mapping library errors to exit code 2."""
    try:
        app(args=argv, prog_name="personalize")
    except PersonalizeError as exc:
        print(f"personalize: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except MemoryError:
        print("personalize: error: out of memory; try a smaller input or more memory", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
