"""Each finding's verdict as a picture: every condition's per-seed values, their mean with its 95% CI (coloured by
the condition's status), the value it is judged against and, for a directional claim, delta. It opens each
report and stands for the finding on the index, so it must read at a small size."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from . import figures

STATUS_COLOURS = {"met": "#1a7f37", "failed": "#cf222e", "undecided": "#9a6700", "not tested": "#6e7781"}


def effect_file(finding: dict) -> str:
    """The file name of a finding's effect plot in its report folder."""
    return f"effect_{finding['id']}.png"


def _limits(c: dict, values: list[float]) -> tuple[float, float]:
    """The x range: the seeds, the finite interval, the value judged against and delta, with a margin."""
    points = [c["estimate"], c["value"], *values]
    points += [x for x in (c["ci_low"], c["ci_high"]) if math.isfinite(x)]
    if c.get("delta") is not None:
        points.append(c["value"] + (c["delta"] if c["op"] == ">" else -c["delta"]))
    if c["op"] == "abs<=":
        points += [-c["value"], c["value"]]
    low, high = min(points), max(points)
    pad = 0.12 * (high - low or 1.0)
    return low - pad, high + pad


def _condition(ax, c: dict) -> None:
    title = textwrap.fill(c["label"] + (" (primary)" if c["primary"] else ""), 78)
    ax.set_title(title, fontsize="small", loc="left")
    ax.set_yticks([])
    if not math.isfinite(c["estimate"]):
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set_xticks([])
        return
    values = [v for _, v in c.get("per_seed") or []]
    low, high = _limits(c, values)
    if c.get("delta") is not None:  # the band an effect "short of delta" falls in
        edge = c["value"] + (c["delta"] if c["op"] == ">" else -c["delta"])
        ax.axvspan(min(c["value"], edge), max(c["value"], edge), color="0.9", zorder=0)
        ax.axvline(edge, color="0.35", linestyle="--", linewidth=1, label=f"δ = {c['delta']:g}")
    if c["op"] == "abs<=":
        for bound in (-c["value"], c["value"]):
            ax.axvline(bound, color="black", linewidth=1)
    else:
        ax.axvline(c["value"], color="black", linewidth=1)
    jitter = np.linspace(-0.25, 0.25, len(values)) if len(values) > 1 else np.zeros(len(values))
    ax.scatter(values, jitter, color="0.55", s=14, zorder=2)
    colour = STATUS_COLOURS.get(c["status"], "black")
    if math.isfinite(c["ci_low"]) and math.isfinite(c["ci_high"]):
        ax.errorbar(c["estimate"], 0, xerr=[[c["estimate"] - c["ci_low"]], [c["ci_high"] - c["estimate"]]], fmt="D",
                    color=colour, capsize=5, markersize=7, zorder=3)
    else:
        ax.plot(c["estimate"], 0, "D", color=colour, markersize=7, zorder=3)
    ax.text(1.0, 0.5, f" {c['status']}", transform=ax.transAxes, color=colour, fontsize="small", va="center",
            fontweight="bold")
    ax.set_xlim(low, high)
    ax.set_ylim(-0.6, 0.6)
    ax.set_xlabel(c["unit"], fontsize="small")
    ax.tick_params(labelsize="small")
    ax.grid(alpha=0.3, axis="x")


def effect_plot(finding: dict):
    """One panel per condition, the primary first."""
    conditions = sorted(finding["conditions"], key=lambda c: not c["primary"])
    fig, axes = plt.subplots(len(conditions), 1, figsize=(6.4, 0.5 + 1.35 * len(conditions)), squeeze=False)
    for ax, condition in zip(axes[:, 0], conditions):
        _condition(ax, condition)
    fig.suptitle(f"{finding['id']}: {finding['verdict']}", x=0.02, ha="left", fontweight="bold",
                 color=STATUS_COLOURS.get({"reproduced": "met", "not reproduced": "failed",
                                           "inconclusive": "undecided"}.get(finding["verdict"], "not tested")))
    fig.tight_layout()
    return fig


CAPTION = ("{id}. Each condition's effect: the seeds (grey dots), their mean with its 95% CI (a diamond, coloured by "
           "the condition's status), the value it is judged against (solid line) and, for a directional claim, δ, "
           "the paper's smallest effect (dashed; an interval inside the grey band is short of it).")


def save_effect_plots(findings: list[dict], out_dir) -> None:
    """Each finding's effect plot, shown with its caption and written to its report folder."""
    for finding in findings:
        figures.save(effect_plot(finding), Path(out_dir) / effect_file(finding), caption=CAPTION.format(**finding))
