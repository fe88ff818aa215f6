"""PNG plots of a churn evaluation: ROC, calibration, gains, lift by decile, feature importance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from personalize._plots import new_figure, save_figure
from personalize.churn.metrics import lift_table

__all__ = ["plot_evaluation"]


def plot_evaluation(evaluation, directory: str | Path) -> list[Path]:
    """Write roc.png, calibration.png, gains.png, lift.png and importance.png; return their paths."""
    from sklearn.metrics import roc_curve

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ev = evaluation
    y = ev.y
    paths = []
    scores = {"model": ev.oof, **ev.baseline_scores}

    fig = new_figure(5, 5)
    ax = fig.add_subplot()
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s)
        auc = ev.model["auc"] if name == "model" else ev.baselines[name]["auc"]
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})", lw=2 if name == "model" else 1)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Churn ROC (out of fold)")
    ax.legend(loc="lower right", fontsize=8)
    paths.append(save_figure(fig, d / "roc.png"))

    cal = ev.calibration
    fig = new_figure(5, 5)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect")
    ax.plot(cal["predicted"], cal["observed"], "o-", label=f"model (ECE {cal.attrs.get('ece', np.nan):.3f})")
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate", title="Calibration",
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    paths.append(save_figure(fig, d / "calibration.png"))

    fig = new_figure(5, 5)
    ax = fig.add_subplot()
    for name, s in scores.items():
        lt = lift_table(y, s)
        ax.plot(np.r_[0, lt["cumulative_share_customers"]], np.r_[0, lt["cumulative_gain"]], "o-", ms=3,
                label=name, lw=2 if name == "model" else 1)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="random")
    ax.set(xlabel="share of customers contacted (highest risk first)", ylabel="share of churners reached",
           title="Cumulative gains")
    ax.legend(loc="lower right", fontsize=8)
    paths.append(save_figure(fig, d / "gains.png"))

    lt = ev.lift
    fig = new_figure(6, 4)
    ax = fig.add_subplot()
    ax.bar(lt["decile"], lt["lift"], color="tab:red")
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set(xlabel="risk decile (1 = highest predicted risk)", ylabel="lift over the base churn rate",
           title="Lift by decile", xticks=lt["decile"])
    paths.append(save_figure(fig, d / "lift.png"))

    imp = ev.importance.head(15).iloc[::-1]
    fig = new_figure(6, 5)
    ax = fig.add_subplot()
    ax.barh(imp["feature"], imp["gain"], color="tab:blue")
    ax.set(xlabel="share of total gain (mean over folds)", title="Feature importance")
    paths.append(save_figure(fig, d / "importance.png"))
    return paths
