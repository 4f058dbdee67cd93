"""Figures for the reports: labelled axes, error bars as 95% CIs over seeds."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # inline in a notebook; matplotlib falls back to Agg without a display
import numpy as np
import pandas as pd

from ..core.training.selfsup import METHODS
from ..study.effects import METRIC_UNITS, mean_effect
from ..study.gates import split_seed

ARM_STYLE = {"scratch": dict(color="tab:orange", marker="o"), "pretrained": dict(color="tab:blue", marker="s"),
             "gn": dict(color="tab:green", marker="o"), "bn": dict(color="tab:red", marker="v"),
             "none": dict(color="tab:gray", marker="x"),
             "scratch+ST": dict(color="tab:red", marker="o"),
             "scratch+ST unnormalised": dict(color="tab:pink", marker="v"),
             "scratch+sequential": dict(color="tab:olive", marker="s"),
             "pretrained+ST": dict(color="tab:purple", marker="s"), "simclr+ST": dict(color="tab:olive", marker="^"),
             "pretrained+joint": dict(color="tab:cyan", marker="D"), "pretrained+joint+ST": dict(color="tab:purple", marker="D"),
             # the self-supervised methods: each says its own colour (rethink.core.training.selfsup)
             **{name: dict(color=cls.colour, marker=marker) for (name, cls), marker in zip(METHODS.items(), "^vxP*hd")}}
# Arms in words where their names are code (HE-4's normalisations); any other arm shows its own name.
ARM_LABELS = {"gn": "GroupNorm", "bn": "BatchNorm, small per-device batch", "syncbn": "BatchNorm over the batch (SyncBN)",
              "none": "no normalization"}
SPLIT_NAMES = {"val": "validation", "test": "held-out test", "train": "training"}
PANEL_TITLES = {"schedule": "{:g}x schedule", "label_fraction": "{:.0%} of the training set",
                "aug": "augmentation {}", "label_count": "{:g} labels"}
AXIS_LABELS = {"schedule": "schedule (multiples of the 1x schedule)", "label_fraction": "share of the training set",
               "epoch": "epoch", "step": "training step", "label_count": "downstream labels (log scale)"}


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (0 for a single seed: no error bar)."""
    effect = mean_effect(values)
    return effect.estimate, (effect.ci_high - effect.estimate if effect.n > 1 else 0.0)


def mean_ci_text(values) -> str:
    """'mean ± half-width' of the 95% CI, as the report tables print it."""
    return "{:.1f} ± {:.1f}".format(*mean_ci(values))


def arm_label(arm: str) -> str:
    """An arm in words: HE-4's normalisations spelled out, a self-supervised method by its own name."""
    return ARM_LABELS.get(arm) or (METHODS[arm].display_name if arm in METHODS else arm)


def metric_curve(final: pd.DataFrame, metric: str, title: str, x: str = "schedule", ax=None, log_x: bool = False,
                 ylabel: str | None = None, split: str = "val"):
    """A final metric (on `split`) against `x` (schedule length, data size...), one line per arm."""
    ax = ax or plt.subplots(figsize=(5.5, 4))[1]
    for arm, rows in final.groupby("arm"):
        points = [(v, *mean_ci(g.value)) for v, g in rows.groupby(x)]
        xs, y, err = map(np.array, zip(*points))
        ax.errorbar(xs, y, yerr=err, capsize=4, label=f"{arm_label(arm)} (n={rows.seed.nunique()} seeds)",
                    **ARM_STYLE.get(arm, {}))
    if log_x:
        ax.set_xscale("log")
    ax.set_xticks(sorted(final[x].unique()), [f"{v:g}" for v in sorted(final[x].unique())])
    ax.minorticks_off()
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel(ylabel or f"{SPLIT_NAMES.get(split, split)} {metric} (points)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax.figure


def arm_points(final: pd.DataFrame, metric: str, title: str, order: list[str] | None = None,
               ylabel: str | None = None, split: str = "val"):
    """The final metric per arm, in the order of the claim (`order`): each arm's mean with its 95% CI, and each seed
    as a grey line through its arms, so that a paired effect of a point or two shows as the lines' slope. The axis
    spans the values, not 0 upward."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    arms = [a for a in (order or list(dict.fromkeys(final.arm))) if a in set(final.arm)]
    for seed, rows in final.groupby("seed"):
        values = rows.set_index("arm").value
        ax.plot(range(len(arms)), [values.get(a, np.nan) for a in arms], color="0.7", linewidth=0.8, zorder=1)
    for i, arm in enumerate(arms):
        mean, err = mean_ci(final[final.arm == arm].value)
        ax.errorbar(i, mean, yerr=err, fmt="o", capsize=6, markersize=7, zorder=2,
                    color=ARM_STYLE.get(arm, {}).get("color", "black"))
    labels = [arm_label(a) for a in arms]
    slant = max(map(len, labels)) > 12  # long names would overlap
    ax.set_xticks(range(len(arms)), labels, rotation=20 if slant else 0, ha="right" if slant else "center")
    ax.set_xlim(-0.5, len(arms) - 0.5)
    ax.set_ylabel(ylabel or f"{SPLIT_NAMES.get(split, split)} {metric} (points)")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    return fig


def metric_bars(finals: dict[str, pd.DataFrame], title: str, ylabel: str):
    """Several final metrics (e.g. AP, AP50, AP75) side by side, one bar per arm with its 95% CI; `ylabel` names
    what is plotted and on which split."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    arms = sorted({arm for final in finals.values() for arm in final.arm})
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        points = [mean_ci(final[final.arm == arm].value) for final in finals.values()]
        y, err = map(np.array, zip(*points))
        ax.bar(np.arange(len(finals)) + (i - (len(arms) - 1) / 2) * width, y, width, yerr=err, capsize=4,
               label=arm_label(arm),
               color=ARM_STYLE.get(arm, {}).get("color"), alpha=0.8)
    ax.set_xticks(range(len(finals)), list(finals))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return fig


def training_curves(results: pd.DataFrame, metric: str, split: str = "val", panel: str = "schedule",
                    x: str = "epoch", splits: tuple[str, ...] | None = None):
    """Metric against epochs (or steps), one panel per value of `panel`, one line per arm (and per split
    when `splits` is given: solid train, dashed val): mean over seeds with a 95% CI band."""
    splits = splits or (split,)
    rows = results[(results.metric == metric) & results.split.isin(splits)]
    panels = sorted(rows[panel].unique())
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), sharey=True, squeeze=False)
    for ax, value in zip(axes[0], panels):
        for (arm, part), arm_rows in rows[rows[panel] == value].groupby(["arm", "split"]):
            curve = [(e, *mean_ci(g.value)) for e, g in arm_rows.groupby(x)]
            xs, y, err = map(np.array, zip(*curve))
            style = ARM_STYLE.get(arm, {})
            label = arm_label(arm) if len(splits) == 1 else f"{arm_label(arm)} {part}"
            ax.plot(xs, y, label=label, linestyle="--" if part == "val" and len(splits) > 1 else "-", **style)
            low, high = y - err, y + err
            if metric in METRIC_UNITS:  # points: a band past 0 or 100 (3 seeds, one dip) shows no possible value
                low, high = low.clip(0, 100), high.clip(0, 100)
            ax.fill_between(xs, low, high, alpha=0.2, color=style.get("color"))
        ax.set_title(PANEL_TITLES.get(panel, panel + " {}").format(value))
        ax.set_xlabel(AXIS_LABELS.get(x, x))
        ax.grid(alpha=0.3)
    name = " / ".join(SPLIT_NAMES.get(s, s) for s in splits)
    axes[0][0].set_ylabel(f"{name} {metric}" + (" (points)" if metric != "loss" else ""))
    fig.tight_layout()
    panel_legend(fig, axes[0])
    return fig


def pretraining_losses(pretraining: pd.DataFrame, chance: dict, factor: float):
    """Each checkpoint's pretext loss per epoch (a report's pretraining.csv), one panel each, against its chance
    value (dashed) and the pre-training gate's factor x chance (dotted); a loss with no chance value (the
    autoencoder's) has no line. A method pre-trained once per seed ('<name> (seed <k>)') has one line per seed."""
    rows = pretraining[pretraining.metric.str.endswith("loss")]
    groups: dict[str, list[str]] = {}
    for checkpoint in rows.checkpoint.unique():
        groups.setdefault(split_seed(checkpoint)[0], []).append(checkpoint)
    fig, axes = plt.subplots(1, len(groups), figsize=(2.9 * len(groups), 2.9), squeeze=False)
    for ax, (name, members) in zip(axes[0], groups.items()):
        for member in members:
            curve = rows[rows.checkpoint == member]
            seed = split_seed(member)[1]
            ax.plot(curve.epoch, curve.value, marker="o", markersize=3, label=None if seed is None else f"seed {seed}")
        level = chance.get(members[0])
        if level:
            ax.axhline(level, color="black", linestyle="--", linewidth=0.8, label="chance")
            ax.axhline(factor * level, color="crimson", linestyle=":", linewidth=1.2, label=f"gate ({factor:g} x chance)")
        if level or len(members) > 1:
            ax.legend(fontsize="x-small")
        ax.set_title(name, fontsize="small")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("pretext loss (train)")
    fig.tight_layout()
    return fig


def mark_extrapolated(ax, utilities: pd.DataFrame) -> None:
    """Each seed's U(n) on a utility plot: a dot where n̂ was interpolated on the scratch curve, a cross where it
    was read off beyond it (extrapolated, perhaps clamped)."""
    for outside, marker, label in ((False, ".", "one seed, interpolated"), (True, "x", "one seed, extrapolated")):
        rows = utilities[utilities.extrapolated == outside]
        if len(rows):
            ax.scatter(rows.label_count, rows.utility, marker=marker, color="dimgray", s=22, zorder=3, label=label)
    ax.legend(fontsize="small")


def panel_legend(fig, axes) -> None:
    """One legend above the figure with every panel's series: a series may run in some panels only."""
    unique = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            unique.setdefault(label, handle)
    fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=min(len(unique), 6), fontsize="small",
               bbox_to_anchor=(0.5, 1.0))


FIGURE_NUMBERS: dict[str, int] = {}  # file name -> its number in this notebook: a re-run cell keeps its number
SAVED: set[Path] = set()  # every figure file this kernel wrote


def prune(out_dir) -> None:
    """Delete the PNG files in `out_dir` that this notebook did not write (a figure a former version saved):
    a report folder holds exactly the figures its report shows. Returns nothing: a value would print."""
    for path in sorted(Path(out_dir).glob("*.png")):
        if path.resolve() not in SAVED:
            path.unlink()


def save(fig, path, caption: str | None = None) -> None:
    """Write `fig` to `path`. With a `caption`, also show it here, then "Figure N." and the caption under it;
    N counts the notebook's figures in order of their first save (FIGURE_NUMBERS). Returns nothing: a value
    would print as the cell's output."""
    fig.savefig(path, dpi=110, bbox_inches="tight")
    SAVED.add(Path(path).resolve())
    if caption is None:
        return
    from IPython.display import Markdown, display

    number = FIGURE_NUMBERS.setdefault(Path(path).name, len(FIGURE_NUMBERS) + 1)
    display(fig)
    plt.close(fig)  # shown once, above its caption (the inline backend would show it again at the cell's end)
    display(Markdown(f"**Figure {number}.** {caption}"))


def gain_bars(gains: pd.DataFrame, title: str, ylabel: str = "accuracy change (points)"):
    """Zoph et al.'s tables as a figure: one panel per augmentation level, the label fractions along x,
    one bar per comparison (a − b per seed, from study.cell_gains) with its 95% CI and the seeds as dots."""
    augs = sorted(gains.aug.unique())
    comparisons = list(dict.fromkeys(gains.comparison))
    fractions = sorted(gains.label_fraction.unique())
    fig, axes = plt.subplots(1, len(augs), figsize=(1.2 + 3.2 * len(augs), 3.6), sharey=True, squeeze=False)
    width = 0.8 / len(comparisons)
    for ax, aug in zip(axes[0], augs):
        for i, comparison in enumerate(comparisons):
            offset = (i - (len(comparisons) - 1) / 2) * width
            colour = f"C{i}"
            for j, fraction in enumerate(fractions):
                values = gains[(gains.aug == aug) & (gains.comparison == comparison)
                               & (gains.label_fraction == fraction)].value
                if values.empty:
                    continue
                mean, err = mean_ci(values)
                ax.bar(j + offset, mean, width, yerr=err, capsize=3, color=colour, alpha=0.75, label=comparison)
                ax.plot(np.full(len(values), j + offset), values, "k.", alpha=0.5, markersize=4)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(fractions)), [f"{f:.0%}" for f in fractions])
        ax.set_xlabel("share of the downstream labels")
        ax.set_title(f"augmentation {aug}")
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel(ylabel)
    panel_legend(fig, axes[0])  # every panel's series: a comparison may run in one panel only (ZO-4's student)
    fig.suptitle(title, y=1.14)
    return fig
