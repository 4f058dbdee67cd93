"""Figures for the reports: labelled axes, error bars as 95% CIs over seeds."""
from __future__ import annotations

import matplotlib.pyplot as plt  # inline in a notebook; matplotlib falls back to Agg without a display
import numpy as np
import pandas as pd

from .findings import mean_effect

ARM_STYLE = {"scratch": dict(color="tab:orange", marker="o"), "pretrained": dict(color="tab:blue", marker="s")}


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (0 for a single seed: no error bar)."""
    effect = mean_effect(values)
    return effect.estimate, (effect.ci_high - effect.estimate if effect.n > 1 else 0.0)


def schedule_curve(final: pd.DataFrame, metric: str, title: str, ax=None):
    """Final validation metric against schedule length, one line per arm."""
    ax = ax or plt.subplots(figsize=(5.5, 4))[1]
    for arm, rows in final.groupby("arm"):
        points = [(s, *mean_ci(g.value)) for s, g in rows.groupby("schedule")]
        x, y, err = map(np.array, zip(*points))
        ax.errorbar(x, y, yerr=err, capsize=4, label=f"{arm} (n={rows.seed.nunique()} seeds)", **ARM_STYLE.get(arm, {}))
    ax.set_xlabel("schedule (multiples of the 1x schedule)")
    ax.set_ylabel(f"validation {metric} (points)")
    ax.set_xticks(sorted(final.schedule.unique()))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax.figure


def training_curves(results: pd.DataFrame, metric: str, split: str = "val"):
    """Metric against epochs for every schedule: one panel per schedule, mean over seeds with a CI band."""
    rows = results[(results.metric == metric) & (results.split == split)]
    schedules = sorted(rows.schedule.unique())
    fig, axes = plt.subplots(1, len(schedules), figsize=(3.6 * len(schedules), 3.4), sharey=True, squeeze=False)
    for ax, schedule in zip(axes[0], schedules):
        for arm, arm_rows in rows[rows.schedule == schedule].groupby("arm"):
            curve = [(e, *mean_ci(g.value)) for e, g in arm_rows.groupby("epoch")]
            x, y, err = map(np.array, zip(*curve))
            ax.plot(x, y, label=arm, **ARM_STYLE.get(arm, {}))
            ax.fill_between(x, y - err, y + err, alpha=0.2, color=ARM_STYLE.get(arm, {}).get("color"))
        ax.set_title(f"{schedule:g}x schedule")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{split} {metric}" + (" (points)" if metric != "loss" else ""))
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def save(fig, path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
