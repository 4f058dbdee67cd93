"""Zoph, Ghiasi, Lin, Cui, Liu, Cubuk & Le 2020, "Rethinking Pre-training and Self-training" (arXiv
2006.06882): ZO-1 to ZO-5 on downstream classification. A grid of augmentation level x label fraction;
arms are inits ("scratch", "pretrained", "simclr"), their self-trained students ("<init>+ST") and ZO-5's
joint-training arms. The criteria's values are pre-registered in config/study.yaml."""
from __future__ import annotations

import pandas as pd

from ..core.augment import LEVELS
from .runs import iteration_matched_runs
from .verdicts import (METRIC_UNITS, arm_selector, final_metric, finding, gap, mean_effect, paired_effect,
                       seed_gaps, with_arms)

# What each finding claims, what the paper reports, and the paper's own effect in the unit of ours (a difference
# of the headline metric, in points, for the quantity the criterion's primary effect measures).
CLAIMS = {
    "ZO-1": dict(
        claim="The stronger the augmentation, the less pre-training helps, until it hurts.",
        paper="ImageNet pre-training helps with flip+crop (Augment-S1) and hurts with RandAugment + large scale "
              "jitter (Augment-S4) on 100% of COCO, by about −1 AP (Zoph et al. 2020, Table 2).",
        paper_effect="pretrained − scratch at the strongest augmentation with all labels: about −1 AP"),
    "ZO-2": dict(
        claim="The more labelled data, the less pre-training helps.",
        paper="ImageNet pre-training helps with 20% of the COCO labels and hurts with 100% (Zoph et al. 2020, Table 3).",
        paper_effect="(pretrained − scratch) with all labels minus with 20%: negative (from a gain to a loss)"),
    "ZO-3": dict(
        claim="Self-training helps in every regime, including where pre-training hurts, and stacks with pre-training.",
        paper="+1.3 to +3.4 AP from self-training at every data size and augmentation; at 20% of the labels +3.4 AP on "
              "random init vs +2.6 on ImageNet init (Zoph et al. 2020, Tables 4-5).",
        paper_effect="student − teacher: +1.3 to +3.4 AP in every cell"),
    "ZO-4": dict(
        claim="Self-supervised pre-training (SimCLR) behaves like supervised pre-training: it hurts where that hurts, "
              "and self-training still helps on top of it.",
        paper="SimCLR init hurts at Augment-S4 with 100% of COCO, and self-training on top of it still helps "
              "(Zoph et al. 2020, Table 6).",
        paper_effect="SimCLR init − scratch at Augment-S4 with all labels: negative"),
    "ZO-5": dict(
        claim="Pre-training, joint training and self-training are additive: joint training (the downstream task trained "
              "together with the upstream labelled task, one backbone) adds on top of pre-training, and "
              "self-training adds on top of both.",
        paper="The three stack on COCO (Zoph et al. 2020, Sec. 5); the overview: joint training is \"even better ... if "
              "you still do full self-training after (1-2% more)\".",
        paper_effect="+ joint training, then + self-training: each step positive (self-training 1-2 points more)"),
}


STUDENT = "+ST"


def cell_name(aug: str, fraction: float) -> str:
    return f"{aug}_{fraction * 100:g}%"


def with_cells(results: pd.DataFrame) -> pd.DataFrame:
    """The results with a `cell` column ("S2_5%"): one figure panel per cell."""
    return results.assign(cell=[cell_name(a, f) for a, f in zip(results.aug, results.label_fraction)])


def pseudo_label_table(results: pd.DataFrame) -> pd.DataFrame:
    """Each student's pseudo-labels, mean over seeds: the share of the pool its teacher kept, the share of kept
    images showing a downstream class, and the pseudo-labels' accuracy on those (rows: cell and student)."""
    quality = results[results.split == "pseudo"]
    table = quality.groupby(["aug", "label_fraction", "arm", "metric"]).value.mean().unstack("metric")
    return table.rename(columns={"kept_share": "kept share", "in_domain_share": "in-domain share",
                                 "in_domain_accuracy": "accuracy (in-domain)"}).round(3)


def student_cells(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of every cell and init that has a self-trained student: the students, their teachers (and ZO-5's
    joint run)."""
    students = results[results.arm.str.endswith(STUDENT)][["aug", "label_fraction", "init"]].drop_duplicates()
    return results.merge(students, on=["aug", "label_fraction", "init"])


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


def level_value(setting, aug: str):
    """A grid setting given per augmentation level ({"S1": 32, "S2": 32}) or as one number for every level."""
    if not isinstance(setting, dict):
        return setting
    if aug not in setting:
        raise ValueError(f"no value for augmentation level {aug!r} in {setting}: give one per level of aug_levels")
    return setting[aug]


def zo_runs(world_dir: str, label_fractions: list[float], aug_levels: list[str], seeds: list[int], inits: list[str],
            epochs_1x, batch_size: int) -> list[dict]:
    """The supervised grid: every init at every (aug, label_fraction) cell and seed. Each level trains for its
    `epochs_1x` (one number, or one per level) of the full set in iterations, whatever the label fraction."""
    return [run for aug in aug_levels
            for run in iteration_matched_runs(world_dir, "classify", label_fractions, level_value(epochs_1x, aug),
                                              batch_size, init=inits, aug=[aug], seed=seeds)]


def derived_runs(teachers: list[dict], cells: list[tuple[str, str, float]], arms: dict[str, dict]) -> list[dict]:
    """For each teacher run whose (init, aug, label_fraction) is in `cells`, one run per entry of `arms`
    (name, with "{init}" filled in -> run settings, e.g. a method): the teacher's settings, hence its schedule."""
    return [{**run, **settings, "arm": name.format(init=run["init"])} for name, settings in arms.items()
            for run in teachers if (run["init"], run["aug"], run["label_fraction"]) in cells]


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


def zo3_cells(aug_levels: list[str], label_fractions: list[float]) -> list[tuple[str, str, float]]:
    """ZO-3's cells as (init, aug, label_fraction): where pre-training helps least (the strongest level, all labels)
    on random and on pre-trained init, and the fewest labels there on random init."""
    strongest = sorted(aug_levels, key=LEVELS.index)[-1]
    fewest, most = min(label_fractions), max(label_fractions)
    return list(dict.fromkeys([("scratch", strongest, most), ("pretrained", strongest, most),
                               ("scratch", strongest, fewest)]))


def zo3_gains(final: pd.DataFrame) -> dict[tuple[str, str, float], dict[int, float]]:
    """(init, aug, label_fraction) -> seed -> student − teacher, for ZO-3's cells whose student ran."""
    _, strongest, smallest, largest = corner_cells(final)
    gains = {(init, aug, f): seed_gaps(final, init + STUDENT, init, aug=aug, label_fraction=f)
             for init, aug, f in zo3_cells([strongest], [smallest, largest])}
    return {cell: g for cell, g in gains.items() if g}


def zo3_finding(results: pd.DataFrame, min_gain: float, profile: str, figure: str | None = None) -> dict:
    """ZO-3: the mean student − teacher gain over ZO-3's cells (zo3_cells), paired by seed, > `min_gain`; each
    teacher is the supervised run of the same cell, init and seed. The report shows each cell's gain beside it."""
    final = final_metric(results, "accuracy")
    gains = zo3_gains(final)
    seeds = sorted(set.intersection(*(set(g) for g in gains.values())))
    mean = [sum(g[seed] for g in gains.values()) / len(gains) for seed in seeds]
    arms = tuple(arm for init, aug, f in gains for arm in cell_arms(final, init + STUDENT, init, aug, f))
    cells = "; ".join(f"{init} init at {cell_name(aug, f)}" for init, aug, f in gains)
    effects = {"st_mean_over_cells": with_arms(mean_effect(mean, unit=METRIC_UNITS["accuracy"]), arms, mean)}
    text = (f"the mean over its {len(gains)} cells ({cells}) of student − teacher accuracy, paired by seed, "
            f"> {min_gain:g} points (95% CI)")
    return finding(CLAIMS, "ZO-3", text, [dict(effect="st_mean_over_cells", op=">", value=min_gain)], effects,
                   profile, figure)


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


# ZO-5's arms at its cell, on pre-trained init (the grid's `pretrained` run first): arm -> run settings. The
# joint self-training student's teacher is that cell's supervised pre-trained run.
ZO5_ARMS = {"pretrained+joint": dict(method="joint"), "pretrained+joint" + STUDENT: dict(method="joint_noisy_student")}
ZO5_STEPS = {"joint_minus_pretrained": ("pretrained+joint", "pretrained"),
             "selftraining_minus_joint": ("pretrained+joint" + STUDENT, "pretrained+joint")}


def zo5_finding(results: pd.DataFrame, aug: str, label_fraction: float, min_gain: float, profile: str,
                figure: str | None = None) -> dict:
    """ZO-5: at one cell, each step of pre-training -> + joint training (the upstream labelled task in the same
    run) -> + self-training gains more than `min_gain` points, paired by seed."""
    final = final_metric(results, "accuracy")
    cell = dict(aug=aug, label_fraction=label_fraction)
    effects = {name: gap(final, a, b, "accuracy", **cell) for name, (a, b) in ZO5_STEPS.items()}
    text = (f"at {cell_name(aug, label_fraction)}, pre-trained + joint training − pre-trained > {min_gain:g} accuracy "
            f"points, and + self-training on top − pre-trained + joint > {min_gain:g} (95% CIs)")
    conditions = [dict(effect=name, op=">", value=min_gain) for name in effects]
    return finding(CLAIMS, "ZO-5", text, conditions, effects, profile, figure)
