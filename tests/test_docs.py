"""The docs in docs/ stay true: the CLI reference is what the script generates from the typer app now, every
HTTP route is in docs/http.md, every PERSONALIZE_* setting in docs/configuration.md, and links between them hold."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def gen():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        return importlib.import_module("gen_cli_reference")
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def test_the_cli_reference_is_current(gen):
    current = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert current == gen.render(), "docs/cli.md is not current: run .venv/bin/python scripts/gen_cli_reference.py"


def test_the_cli_reference_covers_every_command_and_option(gen):
    import typer

    from personalize.cli import app

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = []

    def walk(cmd, path):
        if len(path) > 1 and f"#{'#' if len(path) > 2 else ''} {' '.join(path)}\n" not in text:
            missing.append(" ".join(path))
        for p in cmd.params:
            for opt in getattr(p, "opts", []):
                if opt.startswith("-") and opt != "--help" and f"`{opt}`" not in text:
                    missing.append(f"{' '.join(path)} {opt}")
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), ["personalize"])
    assert not missing, f"not in docs/cli.md: {missing[:10]}"


def test_the_check_mode_fails_on_a_stale_file(gen, tmp_path, monkeypatch, capsys):
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n")
    monkeypatch.setattr(gen, "OUT", stale)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert "not current" in capsys.readouterr().err
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0


def test_every_http_route_is_documented():
    from serving import dashboard
    from serving.app import create_app

    text = (DOCS / "http.md").read_text(encoding="utf-8")
    spec = create_app().openapi()
    routes = [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops]
    routes += [(m, "/dashboard" + r.path.removeprefix("/dashboard")) for r in dashboard.router.routes
               for m in r.methods if m != "HEAD"]
    missing = [f"{m} {p}" for m, p in routes if f"{m} {p}`" not in text and f"`{m} {p}" not in text]
    assert not missing, f"routes not in docs/http.md: {missing}"
    assert "/docs" in text


def test_every_setting_is_documented():
    from serving.settings import Settings

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [f"PERSONALIZE_{n.upper()}" for n in Settings.model_fields if f"`PERSONALIZE_{n.upper()}`" not in text]
    assert not missing, f"settings not in docs/configuration.md: {missing}"
    from personalize.datasets import DATA_DIR_ENV
    assert f"`{DATA_DIR_ENV}`" in text


def test_links_between_docs_and_from_the_readme_resolve():
    pages = [*DOCS.glob("*.md"), ROOT / "README.md", ROOT / "notebooks" / "README.md"]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if not (page.parent / target).is_file():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in ("docs/cli.md", "docs/http.md", "docs/configuration.md", "docs/deployment.md"):
        assert doc in readme, f"README.md does not link {doc}"
