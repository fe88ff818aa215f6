"""Figures for PNG output: drawn on a matplotlib Agg canvas (no pyplot state, no display) and written
atomically, or rendered to bytes (PNG or SVG) for a page that embeds them. Every plotting module of the library
goes through these functions."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from personalize._atomic import atomic_write


def new_figure(width: float, height: float, dpi: int = 100):
    """A matplotlib Figure on its own Agg canvas (matplotlib is imported on first use: it is slow to load)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` (parents created; a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", bbox_inches="tight"))
    return path


def figure_bytes(fig: Any, fmt: str = "svg") -> bytes:
    """``fig`` rendered as ``fmt`` ("svg" or "png") in memory; SVG without a creation date, so the same figure
    gives the same bytes."""
    if fmt not in ("svg", "png"):
        raise ValueError(f"fmt must be 'svg' or 'png', got {fmt!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()
