"""Figures for PNG output: drawn on a matplotlib Agg canvas (no pyplot state, no display) and written
atomically. Every plotting module of the library goes through these two functions."""

from __future__ import annotations

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
