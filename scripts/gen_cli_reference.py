"""Write docs/cli.md, the reference of every ``personalize`` command, from the typer app itself.

    .venv/bin/python scripts/gen_cli_reference.py           # rewrite docs/cli.md
    .venv/bin/python scripts/gen_cli_reference.py --check   # exit 1 when docs/cli.md is not current

``tests/test_docs.py`` fails when the checked-in file differs from what this script writes, so a new command or
option cannot land undocumented. The text comes from the commands' docstrings and ``help=`` strings. The
command tree is read by duck typing (``commands``, ``params``, ``opts``): typer may bring its own copy of click.
"""

from __future__ import annotations

import inspect
import sys
import typing
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "docs" / "cli.md"

HEADER = """# Command-line reference

Generated from the `personalize` typer app by `scripts/gen_cli_reference.py`; do not edit by hand
(`tests/test_docs.py` fails when this file is not current). Every command prints one JSON document on stdout
with `--json`; a mistake in the input or the options prints one line on stderr and exits with code 2.
"""


_NAMES = {str: "text", int: "integer", float: "number", bool: "flag", Path: "path"}


def _annotation_name(ann) -> str:
    args = typing.get_args(ann)
    if typing.get_origin(ann) is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if typing.get_origin(ann) in (list, tuple):
        return (_annotation_name(args[0]) if args else "text") + ", repeatable"
    if args:  # X | None
        named = [a for a in args if a is not type(None)]
        return _annotation_name(named[0]) if named else "text"
    return _NAMES.get(ann, getattr(ann, "__name__", str(ann)).lower())


def _type(param) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    descriptor = getattr(param, "type_descriptor", None)      # typer >= 0.2x
    if descriptor is not None and getattr(descriptor, "annotation", None) is not None:
        return _annotation_name(descriptor.annotation)
    t = getattr(param, "type", None)                           # click parameter types
    if getattr(t, "choices", None):
        return " \\| ".join(f"`{c}`" for c in t.choices)
    name = str(getattr(t, "name", t)).lower()
    return {"float": "number", "boolean": "flag", "filename": "path"}.get(name, name)


def _default(param) -> str:
    d = param.default
    if callable(d) or d is None or d is False or d == () or d == []:
        return ""
    if getattr(param, "is_flag", False) and d is True and getattr(param, "secondary_opts", None):
        return f"`{param.opts[0]}`"
    return f"`{d}`"


def _names(param) -> str:
    if param.param_type_name == "argument":
        return f"`{(param.metavar or param.name).upper()}`" + ("" if param.required else " (optional)")
    names = [*param.opts, *getattr(param, "secondary_opts", [])]
    return ", ".join(f"`{n}`" for n in names) + (" (required)" if param.required else "")


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _usage(path: list[str], cmd) -> str:
    ctx = cmd.context_class(cmd, info_name=" ".join(path))
    pieces = cmd.collect_usage_pieces(ctx)
    return " ".join([*path, *pieces])


def _params(cmd, path: list[str], out: list[str]) -> None:
    params = [p for p in cmd.params if not getattr(p, "hidden", False) and p.name != "help"]
    if not params and hasattr(cmd, "commands"):
        return
    out += ["```", _usage(path, cmd), "```", ""]
    if params:
        out += ["| argument / option | type | default | description |", "|---|---|---|---|"]
        for p in params:
            out.append(f"| {_names(p)} | {_type(p)} | {_default(p)} | {_cell(getattr(p, 'help', None))} |")
        out.append("")


def _walk(cmd, path: list[str], out: list[str]) -> None:
    level = "###" if len(path) > 2 else "##"
    if len(path) > 1:
        out += [f"{level} {' '.join(path)}", "", inspect.cleandoc(cmd.help or "").strip(), ""]
        _params(cmd, path, out)
    if hasattr(cmd, "commands"):
        if len(path) > 1:
            out += ["Subcommands: " + ", ".join(f"`{' '.join(path[1:])} {s}`" for s in sorted(cmd.commands)) + ".", ""]
        for name in sorted(cmd.commands):
            _walk(cmd.commands[name], [*path, name], out)


def render() -> str:
    from personalize.cli import app

    root = typer.main.get_command(app)
    lines = [HEADER, "Commands:", ""]
    for name in sorted(root.commands):
        sub = root.commands[name]
        first = inspect.cleandoc(sub.help or "").split("\n")[0]
        lines.append(f"- [`personalize {name}`](#personalize-{name}): {first}")
    lines.append("")
    _walk(root, ["personalize"], lines)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.is_file() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(ROOT)} is not current: run .venv/bin/python scripts/gen_cli_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    from personalize._atomic import atomic_write

    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(OUT, lambda fh: fh.write(text), binary=False)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
