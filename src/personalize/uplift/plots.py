"""Qini and uplift curves as PNG: the model's curves against the random line and the perfect (oracle) curve.

Both functions draw one panel per treatment arm (rows of that arm and of the control), with x
= share of customers targeted (highest predicted uplift first) and y = the curve divided by the
number of customers (incremental outcome per customer of the population), the same axes the
areas of :mod:`personalize.uplift.metrics` are computed on; the legend gives each model's
normalised coefficient. The dashed line is random targeting, the dotted one the oracle ordering.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from personalize._plots import new_figure, save_figure
from personalize.errors import DataError
from personalize.uplift import metrics as M

__all__ = ["plot_qini_curve", "plot_uplift_curve", "plot_evaluation"]

_CURVES = {
    "qini": (M.qini_curve, M.perfect_qini_curve, M.qini_coefficient, "Qini curve", "Qini"),
    "uplift": (M.uplift_curve, M.perfect_uplift_curve, M.auuc, "Uplift curve", "AUUC"),
}


def _draw(kind: str, y: Any, treatment: Any, predictions: Mapping[str, Any], path: str | Path, *,
          control_name: Any, treatment_names: list | None, title: str | None, outcome_label: str) -> Path:
    curve, perfect, coef, heading, coef_name = _CURVES[kind]
    yv = np.asarray(y, dtype=np.float64)
    t = np.asarray(treatment, dtype=object)
    if len(yv) != len(t):
        raise DataError(f"{len(yv)} outcomes but {len(t)} treatment values", column="treatment")
    if not predictions:
        raise DataError("no predictions to plot", column="uplift")
    arms = list(treatment_names) if treatment_names is not None else sorted({a for a in t if a != control_name})
    if not arms:
        raise DataError(f"no treated rows (every row is {control_name!r})", column="treatment")
    preds = {}
    for name, u in predictions.items():
        a = np.asarray(u, dtype=np.float64)
        if a.ndim == 1:
            a = a[:, None]
        if a.shape != (len(yv), len(arms)):
            raise DataError(f"predictions {name!r} have shape {a.shape}, expected ({len(yv)}, {len(arms)})",
                            column="uplift")
        preds[name] = a
    fig = new_figure(5.5 * len(arms), 4.2)
    for j, arm in enumerate(arms):
        ax = fig.add_subplot(1, len(arms), j + 1)
        rows = (t == control_name) | (t == arm)
        yy, tt = yv[rows], (t[rows] == arm).astype(np.float64)
        n = float(rows.sum())
        kp, vp = perfect(yy, tt)
        for name, u in preds.items():
            k, v = curve(yy, u[rows, j], tt)
            style = {"lw": 3.0, "alpha": 0.45, "zorder": 1} if name == "chosen" else {"lw": 1.0, "zorder": 2}
            ax.plot(k / n, v / n, label=f"{name} ({coef_name} {coef(yy, u[rows, j], tt):.3f})", **style)
        ax.plot([0, 1], [0, vp[-1] / n], ls="--", color="grey", lw=1, label="random")
        ax.plot(kp / n, vp / n, ls=":", color="black", lw=1, label="perfect")
        ax.set_xlabel("share of customers targeted (highest predicted uplift first)")
        ax.set_ylabel(f"incremental {outcome_label} per customer")
        ax.set_title(f"{heading}: {arm} vs {control_name}" + ("" if title is None else f"\n{title}"), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def plot_qini_curve(y: Any, treatment: Any, predictions: Mapping[str, Any], path: str | Path, *,
                    control_name: Any, treatment_names: list | None = None, title: str | None = None,
                    outcome_label: str = "outcome") -> Path:
    """Qini curves of one or more models (``predictions``: name -> uplift, ``(n,)`` or ``(n, arms)``)
    on rows with arm labels ``treatment``; one panel per treatment arm. Returns the PNG path."""
    return _draw("qini", y, treatment, predictions, path, control_name=control_name,
                 treatment_names=treatment_names, title=title, outcome_label=outcome_label)


def plot_uplift_curve(y: Any, treatment: Any, predictions: Mapping[str, Any], path: str | Path, *,
                      control_name: Any, treatment_names: list | None = None, title: str | None = None,
                      outcome_label: str = "outcome") -> Path:
    """Uplift curves (``U(k) = (mean_t(k) - mean_c(k)) * k``), arguments as :func:`plot_qini_curve`."""
    return _draw("uplift", y, treatment, predictions, path, control_name=control_name,
                 treatment_names=treatment_names, title=title, outcome_label=outcome_label)


def plot_evaluation(evaluation: Any, directory: str | Path, *, learners: list[str] | None = None,
                    outcome_label: str = "outcome") -> dict[str, Path]:
    """``qini_curve.png`` and ``uplift_curve.png`` of an :class:`~personalize.uplift.evaluation.UpliftEvaluation`
    in ``directory``: the first seed's test rows, the chosen model and ``learners`` (default the
    S-, T- and X-learner and the ensemble, those evaluated). Returns ``{"qini": path, "uplift": path}``."""
    c = evaluation.curves
    if not c:
        raise DataError("this evaluation kept no test predictions (keep_curves=False)")
    names = learners if learners is not None else ["s_learner", "t_learner", "x_learner", "ensemble"]
    missing = [n for n in names if n not in c["predictions"]]
    if learners is not None and missing:
        raise DataError(f"no predictions of {missing}; evaluated: {sorted(c['predictions'])}")
    picked = {"chosen": c["predictions"]["chosen"],
              **{n: c["predictions"][n] for n in names if n in c["predictions"] and n != "chosen"}}
    d = Path(directory)
    title = f"seed {c['seed']} test rows, chosen: {c['chosen']}"
    kw = {"control_name": c["control_name"], "treatment_names": c["treatment_names"], "title": title,
          "outcome_label": outcome_label}
    return {"qini": plot_qini_curve(c["y"], c["treatment"], picked, d / "qini_curve.png", **kw),
            "uplift": plot_uplift_curve(c["y"], c["treatment"], picked, d / "uplift_curve.png", **kw)}
