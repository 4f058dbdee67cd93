"""Zoph, Ghiasi, Lin, Cui, Liu, Cubuk & Le 2020, "Rethinking Pre-training and Self-training" (arXiv
2006.06882): ZO-1 to ZO-5 on downstream classification. A grid of augmentation level x label fraction;
arms are inits ("scratch", "pretrained", "pretrained_longer", "simclr") and their self-trained students
("<init>+ST"). The criteria's values are pre-registered in config/study.yaml."""
from __future__ import annotations

import pandas as pd

from ..core.augment import LEVELS
from .runs import iteration_matched_runs
from .verdicts import (METRIC_UNITS, arm_selector, final_metric, finding, gap, mean_effect, paired_effect,
                       seed_gaps, with_arms)

# What each finding claims and what the paper reports.
CLAIMS = {
    "ZO-1": dict(
        claim="The stronger the augmentation, the less pre-training helps, until it hurts.",
        paper="ImageNet pre-training helps with flip+crop (Augment-S1) and hurts with RandAugment + large scale "
              "jitter (Augment-S4) on 100% of COCO, by about −1 AP (Zoph et al. 2020, Table 2)."),
    "ZO-2": dict(
        claim="The more labelled data, the less pre-training helps.",
        paper="ImageNet pre-training helps with 20% of the COCO labels and hurts with 100% (Zoph et al. 2020, Table 3)."),
    "ZO-3": dict(
        claim="Self-training helps in every regime, including where pre-training hurts, and stacks with pre-training.",
        paper="+1.3 to +3.4 AP from self-training at every data size and augmentation; at 20% of the labels +3.4 AP on "
              "random init vs +2.6 on ImageNet init (Zoph et al. 2020, Tables 4-5)."),
    "ZO-4": dict(
        claim="Self-supervised pre-training (SimCLR) behaves like supervised pre-training: it hurts where that hurts, "
              "and self-training still helps on top of it.",
        paper="SimCLR init hurts at Augment-S4 with 100% of COCO, and self-training on top of it still helps "
              "(Zoph et al. 2020, Table 6)."),
    "ZO-5": dict(
        claim="Joint training (supervised and pseudo-label loss in one run) helps more than using the pseudo-labels "
              "one after the other, and the pseudo-label loss normalisation keeps it stable.",
        paper="Joint training and self-training stack; the loss normalisation matters most with strong augmentation "
              "(Zoph et al. 2020, Sec. 5 and Appendix)."),
}


STUDENT = "+ST"


def cell_name(aug: str, fraction: float) -> str:
    return f"{aug}_{fraction * 100:g}%"


def cell_arms(final: pd.DataFrame, a: str, b: str, aug: str, fraction: float) -> tuple[dict, dict]:
    """The two arms a comparison of one cell takes, as the gates select them."""
    return tuple(arm_selector(final, arm, aug=aug, label_fraction=fraction) for arm in (a, b))


def cell_gains(final: pd.DataFrame, comparisons: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """The paper's tables in tidy form: per cell (aug, label_fraction), per comparison name -> (arm a,
    arm b), per seed, a − b. Comparisons whose arms did not run in a cell are left out."""
    rows = []
    for (aug, fraction), cell in final.groupby(["aug", "label_fraction"]):
        for name, (a, b) in comparisons.items():
            rows += [dict(aug=aug, label_fraction=fraction, comparison=name, seed=seed, value=value)
                     for seed, value in seed_gaps(cell, a, b).items()]
    return pd.DataFrame(rows)


def zo_runs(world_dir: str, label_fractions: list[float], aug_levels: list[str], seeds: list[int], inits: list[str],
            epochs_1x: float, batch_size: int, students: list[str] = (), student_cells: list[tuple] | None = None,
            extra_students: dict[str, dict] | None = None, extra_cell: tuple | None = None) -> list[dict]:
    """The classification grid: every init at every (aug, label_fraction) cell and seed, each cell trained
    for the full set's `epochs_1x` in iterations. Then a noisy student for each init in `students` (in
    `student_cells`, all cells if None), and in `extra_cell`, on random init, one more student per
    `extra_students` entry (arm name -> run settings, e.g. a sequential one)."""
    teachers = iteration_matched_runs(world_dir, "classify", label_fractions, epochs_1x, batch_size,
                                      init=inits, aug=aug_levels, seed=seeds)
    in_cells = lambda run, cells: cells is None or (run["aug"], run["label_fraction"]) in cells
    runs = teachers + [dict(run, method="noisy_student", arm=run["init"] + STUDENT) for run in teachers
                       if run["init"] in students and in_cells(run, student_cells)]
    runs += [{**run, **settings, "arm": arm} for arm, settings in (extra_students or {}).items() for run in teachers
             if run["init"] == "scratch" and in_cells(run, [extra_cell])]
    return runs


def corner_cells(final: pd.DataFrame) -> tuple[str, str, float, float]:
    """The grid's weakest and strongest augmentation and its smallest and largest label fraction."""
    augs, fractions = sorted(final.aug.unique(), key=LEVELS.index), sorted(final.label_fraction.unique())
    return augs[0], augs[-1], fractions[0], fractions[-1]


def zo1_finding(results: pd.DataFrame, max_drop: float, max_gain_strongest: float, profile: str,
                figure: str | None = None) -> dict:
    """ZO-1: with all labels, pre-training's gain shrinks from the weakest to the strongest augmentation
    (gain_strongest − gain_weakest < max_drop) until it hurts (gain_strongest < max_gain_strongest)."""
    final = final_metric(results, "accuracy")
    weakest, strongest, _, largest = corner_cells(final)
    gains = {aug: seed_gaps(final, "pretrained", "scratch", aug=aug, label_fraction=largest) for aug in (weakest, strongest)}
    arms = {aug: cell_arms(final, "pretrained", "scratch", aug, largest) for aug in (weakest, strongest)}
    change, at_strongest = f"gain_{strongest}_minus_{weakest}_{largest:.0%}", f"gain_{cell_name(strongest, largest)}"
    effects = {change: with_arms(paired_effect(gains[strongest], gains[weakest], unit=METRIC_UNITS["accuracy"]),
                                 arms[strongest] + arms[weakest]),
               at_strongest: with_arms(mean_effect(gains[strongest].values(), unit=METRIC_UNITS["accuracy"]),
                                       arms[strongest], gains[strongest].values())}
    text = (f"with {largest:.0%} of the labels, pre-training's accuracy gain (pretrained − scratch) at {strongest} minus "
            f"that at {weakest} < {max_drop:g} points, and the gain at {strongest} < {max_gain_strongest:g} points "
            f"(95% CIs)")
    conditions = [dict(effect=change, op="<", value=max_drop), dict(effect=at_strongest, op="<", value=max_gain_strongest)]
    return finding(CLAIMS, "ZO-1", text, conditions, effects, profile, figure, primary=at_strongest)


def zo2_finding(results: pd.DataFrame, min_gain_smallest: float, max_drop: float, profile: str,
                figure: str | None = None) -> dict:
    """ZO-2: at the strongest augmentation, pre-training helps with the fewest labels (gain > min_gain_smallest)
    and helps less with all of them (gain_largest − gain_smallest < max_drop)."""
    final = final_metric(results, "accuracy")
    _, strongest, smallest, largest = corner_cells(final)
    gains = {f: seed_gaps(final, "pretrained", "scratch", aug=strongest, label_fraction=f) for f in (smallest, largest)}
    arms = {f: cell_arms(final, "pretrained", "scratch", strongest, f) for f in (smallest, largest)}
    at_smallest, change = f"gain_{cell_name(strongest, smallest)}", f"gain_{strongest}_{largest:.0%}_minus_{smallest:.0%}"
    effects = {at_smallest: with_arms(mean_effect(gains[smallest].values(), unit=METRIC_UNITS["accuracy"]),
                                      arms[smallest], gains[smallest].values()),
               change: with_arms(paired_effect(gains[largest], gains[smallest], unit=METRIC_UNITS["accuracy"]),
                                 arms[largest] + arms[smallest])}
    text = (f"at {strongest}, pre-training's accuracy gain with {smallest:.0%} of the labels > {min_gain_smallest:g} "
            f"points, and the gain with {largest:.0%} minus that with {smallest:.0%} < {max_drop:g} points (95% CIs)")
    conditions = [dict(effect=at_smallest, op=">", value=min_gain_smallest), dict(effect=change, op="<", value=max_drop)]
    return finding(CLAIMS, "ZO-2", text, conditions, effects, profile, figure, primary=change)


def zo3_finding(results: pd.DataFrame, min_gain: float, profile: str, figure: str | None = None,
                inits: tuple[str, ...] = ("scratch", "pretrained")) -> dict:
    """ZO-3: in every cell of the grid, on every init of `inits`, the self-trained student beats its
    teacher (the supervised run of the same cell, init and seed) by more than `min_gain` points."""
    final = final_metric(results, "accuracy")
    gains = cell_gains(final, {init: (init + STUDENT, init) for init in inits})
    effects = {f"st_{init}_{cell_name(aug, fraction)}":
               with_arms(mean_effect(g.value, unit=METRIC_UNITS["accuracy"]),
                         cell_arms(final, init + STUDENT, init, aug, fraction), g.value)
               for (init, aug, fraction), g in gains.groupby(["comparison", "aug", "label_fraction"])}
    _, strongest, _, largest = corner_cells(final)
    text = (f"student − teacher accuracy > {min_gain:g} points in every cell of the grid, on {' and '.join(inits)} "
            f"init (Holm-adjusted over the {len(effects)} conditions, family-wise 95%)")
    conditions = [dict(effect=name, op=">", value=min_gain) for name in effects]
    return finding(CLAIMS, "ZO-3", text, conditions, effects, profile, figure,
                   primary=f"st_{inits[0]}_{cell_name(strongest, largest)}", adjust="holm")


def zo4_finding(results: pd.DataFrame, max_gain: float, min_gain_selftraining: float, profile: str,
                figure: str | None = None) -> dict:
    """ZO-4: at the strongest augmentation with all labels, SimCLR init minus scratch < max_gain (it hurts
    where supervised pre-training does in the paper), and its self-trained student beats it (> min gain)."""
    final = final_metric(results, "accuracy")
    _, strongest, _, largest = corner_cells(final)
    cell = dict(aug=strongest, label_fraction=largest)
    name = cell_name(strongest, largest)
    effects = {f"simclr_gain_{name}": gap(final, "simclr", "scratch", "accuracy", **cell),
               f"st_simclr_{name}": gap(final, "simclr" + STUDENT, "simclr", "accuracy", **cell)}
    text = (f"at {strongest} with {largest:.0%} of the labels, SimCLR init − scratch accuracy < {max_gain:g} points, and "
            f"its self-trained student − SimCLR init > {min_gain_selftraining:g} points (95% CIs)")
    conditions = [dict(effect=f"simclr_gain_{name}", op="<", value=max_gain),
                  dict(effect=f"st_simclr_{name}", op=">", value=min_gain_selftraining)]
    return finding(CLAIMS, "ZO-4", text, conditions, effects, profile, figure)


ZO5_ARMS = {  # ZO-5's extra students at its cell, on random init: arm -> run settings
    "scratch+sequential": dict(method="sequential"),
    "scratch+ST unnormalised": dict(method="noisy_student", pseudo_normalise=False),
}


ZO5_EFFECTS = {"scratch": "joint_minus_supervised", "scratch+sequential": "joint_minus_sequential",
               "scratch+ST unnormalised": "joint_minus_unnormalised"}


def zo5_finding(results: pd.DataFrame, aug: str, label_fraction: float, min_gain: float, profile: str,
                figure: str | None = None) -> dict:
    """ZO-5: at one cell, from random init, joint self-training (labels and pseudo-labels in one run, the
    normalised loss) beats the supervised teacher, the sequential use of the same pseudo-labels, and the
    same joint run without loss normalisation, each by more than `min_gain` points."""
    final = final_metric(results, "accuracy")
    cell = dict(aug=aug, label_fraction=label_fraction)
    joint = "scratch" + STUDENT
    effects = {name: gap(final, joint, other, "accuracy", **cell) for other, name in ZO5_EFFECTS.items()}
    text = (f"at {cell_name(aug, label_fraction)}, joint self-training − each of supervised, sequential and "
            f"unnormalised joint > {min_gain:g} accuracy points (95% CIs)")
    conditions = [dict(effect=name, op=">", value=min_gain) for name in effects]
    return finding(CLAIMS, "ZO-5", text, conditions, effects, profile, figure)
