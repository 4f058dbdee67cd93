"""Zoph, Ghiasi, Lin, Cui, Liu, Cubuk & Le 2020, "Rethinking Pre-training and Self-training" (arXiv
2006.06882): ZO-1 to ZO-5 on downstream classification. A grid of augmentation level x label fraction;
arms are inits ("scratch", "pretrained", "simclr"), their self-trained students ("<init>+ST") and ZO-5's
joint-training arms. The criteria's values are pre-registered in config/protocol.yaml."""
from __future__ import annotations

import pandas as pd

from ..core.augment.ladder import LEVELS
from .effects import (METRIC_UNITS, scored_split, arm_selector, because, cells_mean_effect, failed_bound, final_metric, gap,
                      mean_effect, paired_effect, require_member, seed_gaps, seed_values, with_arms)
from .runs import iteration_matched_runs
from .verdicts import condition_status, finding

# What each finding claims, what the paper reports, and the paper's own effect in the unit of ours (a difference
# of the headline metric, in points, for the quantity the criterion's primary effect measures).
CLAIMS = {
    "ZO-1": dict(
        claim="The stronger the augmentation, the less pre-training helps, until it hurts.",
        paper="ImageNet pre-training helps with flip+crop (Augment-S1) and hurts with RandAugment + large scale "
              "jitter (Augment-S4) on 100% of COCO, by about −1 AP (Zoph et al. 2020, Table 2).",
        paper_effect="pre-training's gain at the strongest augmentation − at the weakest: about −1 AP with all "
                     "labels (to about −1 AP at Augment-S4)"),
    "ZO-2": dict(
        claim="The more labelled data, the less pre-training helps.",
        paper="ImageNet pre-training helps with 20% of the COCO labels and hurts with 100% (Zoph et al. 2020, Table 3).",
        paper_effect="pre-training's gain with all labels − with 20%: negative (from a gain to about −1 AP)"),
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
    table = quality.groupby(["aug", "label_fraction", "arm", "metric"]).value.mean().unstack("metric") * 100
    return table.rename(columns={"kept_share": "kept share (%)", "in_domain_share": "in-domain share (%)",
                                 "in_domain_accuracy": "accuracy, in-domain (%)"}).round(1)


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


def cell_of(finding: str, settings) -> tuple[str, float]:
    """A finding's cell (its criterion's aug and label_fraction, ZO-5's or BL-2's), checked against the grid before
    any training: (aug, label_fraction)."""
    criterion = settings.criteria[finding]
    require_member(f"{finding}'s aug", criterion["aug"], settings.aug_levels, "aug_levels")
    require_member(f"{finding}'s label_fraction", criterion["label_fraction"], settings.label_fractions,
                   "label_fractions")
    return criterion["aug"], criterion["label_fraction"]


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


def _gain_change(final: pd.DataFrame, fraction: float, weakest: str, strongest: str):
    """Pre-training's gain (pretrained − scratch, per seed) at the strongest level minus at the weakest, with the
    given share of the labels, paired by seed."""
    gains = {aug: seed_gaps(final, "pretrained", "scratch", aug=aug, label_fraction=fraction)
             for aug in (weakest, strongest)}
    arms = cell_arms(final, "pretrained", "scratch", strongest, fraction) + \
        cell_arms(final, "pretrained", "scratch", weakest, fraction)
    return with_arms(paired_effect(gains[strongest], gains[weakest], unit=METRIC_UNITS["accuracy"]), arms)


def _gain(final: pd.DataFrame, aug: str, fraction: float):
    """Pre-training's gain (pretrained − scratch, paired by seed) in one cell."""
    gains = seed_gaps(final, "pretrained", "scratch", aug=aug, label_fraction=fraction)
    return with_arms(mean_effect(gains, unit=METRIC_UNITS["accuracy"]),
                     cell_arms(final, "pretrained", "scratch", aug, fraction), gains.values())


def zo1_finding(results: pd.DataFrame, criterion: dict, profile: str, figure: str | None = None) -> dict:
    """ZO-1, decided where its premise can hold: with the fewest labels, pre-training's gain shrinks from the
    weakest augmentation to the strongest (change_fewest, primary), provided the strongest level helps converged
    scratch there (the criterion's precondition on scratch at the strongest − at the weakest; if its interval is
    not wholly above its value, the primary condition is not tested). Beside it, with all labels: the gain at the
    strongest level (gain_strongest_all: "until it hurts") and its change (change_all)."""
    final = final_metric(results, "accuracy", scored_split(results, "accuracy"))
    weakest, strongest, fewest, most = corner_cells(final)
    premise = with_arms(paired_effect(seed_values(final, "scratch", aug=strongest, label_fraction=fewest),
                                      seed_values(final, "scratch", aug=weakest, label_fraction=fewest),
                                      METRIC_UNITS["accuracy"]),
                        [arm_selector(final, "scratch", aug=a, label_fraction=fewest) for a in (strongest, weakest)])
    precondition = criterion["precondition"]
    premise_label = f"scratch at {strongest} − scratch at {weakest} with {fewest:.0%} of the labels"
    held = condition_status(premise, precondition) == "met"
    why = failed_bound("precondition", premise.ci_low if premise.n > 1 else premise.estimate, precondition["value"],
                       f"{premise_label}: {premise.estimate:+.2f} [{premise.ci_low:+.2f}, {premise.ci_high:+.2f}]; "
                       f"its interval must lie above {precondition['value']:g} for the strongest level to be the "
                       f"strongest for scratch there")
    effects = {"change_fewest": because(_gain_change(final, fewest, weakest, strongest), None if held else why),
               "gain_strongest_all": _gain(final, strongest, most),
               "change_all": _gain_change(final, most, weakest, strongest)}
    gain = lambda aug, f: f"pre-training's gain at {cell_name(aug, f)}"
    labels = {"change_fewest": f"{gain(strongest, fewest)} − {gain(weakest, fewest)}",
              "gain_strongest_all": gain(strongest, most),
              "change_all": f"{gain(strongest, most)} − {gain(weakest, most)}"}
    info = dict(precondition=dict(label=premise_label, estimate=premise.estimate, ci_low=premise.ci_low,
                                  ci_high=premise.ci_high, n=premise.n, op=precondition["op"],
                                  value=precondition["value"], held=held))
    return finding(CLAIMS, "ZO-1", criterion, effects, labels, profile, figure, **info)


def zo2_finding(results: pd.DataFrame, criterion: dict, profile: str, figure: str | None = None) -> dict:
    """ZO-2: at the strongest augmentation, pre-training's gain with all labels minus with the fewest
    (change_strongest, primary), and the gain with the fewest (gain_fewest)."""
    final = final_metric(results, "accuracy", scored_split(results, "accuracy"))
    _, strongest, fewest, most = corner_cells(final)
    gains = {f: seed_gaps(final, "pretrained", "scratch", aug=strongest, label_fraction=f) for f in (fewest, most)}
    arms = {f: cell_arms(final, "pretrained", "scratch", strongest, f) for f in (fewest, most)}
    effects = {"change_strongest": with_arms(paired_effect(gains[most], gains[fewest], unit=METRIC_UNITS["accuracy"]),
                                             arms[most] + arms[fewest]),
               "gain_fewest": _gain(final, strongest, fewest)}
    gain = lambda f: f"pre-training's gain at {cell_name(strongest, f)}"
    labels = {"change_strongest": f"{gain(most)} − {gain(fewest)}", "gain_fewest": gain(fewest)}
    return finding(CLAIMS, "ZO-2", criterion, effects, labels, profile, figure)


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


def zo3_finding(results: pd.DataFrame, criterion: dict, profile: str, figure: str | None = None) -> dict:
    """ZO-3: the mean student − teacher gain over ZO-3's cells (zo3_cells), paired by seed; each teacher is the
    supervised run of the same cell, init and seed. A mean over cells: its interval is the wider of the per-seed
    means' and the cells' pooled one (effects.cells_mean_effect). Each cell's gain is shown beside it, not judged."""
    final = final_metric(results, "accuracy", scored_split(results, "accuracy"))
    gains = zo3_gains(final)
    arms = tuple(arm for init, aug, f in gains for arm in cell_arms(final, init + STUDENT, init, aug, f))
    cells = "; ".join(f"{init} init at {cell_name(aug, f)}" for init, aug, f in gains)
    effect = cells_mean_effect(gains.values(), unit=METRIC_UNITS["accuracy"])
    effects = {"student_gain": with_arms(effect, arms, [v for g in gains.values() for v in g.values()])}
    labels = {"student_gain": f"student − teacher accuracy, the mean over {len(gains)} cells ({cells})"}
    per_cell = [dict(init=init, aug=aug, label_fraction=f, **_interval(mean_effect(g.values())))
                for (init, aug, f), g in gains.items()]
    return finding(CLAIMS, "ZO-3", criterion, effects, labels, profile, figure, cell_gains=per_cell)


def _interval(effect) -> dict:
    return dict(estimate=effect.estimate, ci_low=effect.ci_low, ci_high=effect.ci_high, n=effect.n)


def zo4_finding(results: pd.DataFrame, criterion: dict, profile: str, figure: str | None = None) -> dict:
    """ZO-4: at the strongest augmentation with all labels, SimCLR init − scratch (simclr_gain: it hurts where
    supervised pre-training does in the paper), and its self-trained student − SimCLR init (student_gain)."""
    final = final_metric(results, "accuracy", scored_split(results, "accuracy"))
    _, strongest, _, most = corner_cells(final)
    cell = dict(aug=strongest, label_fraction=most)
    effects = {"simclr_gain": gap(final, "simclr", "scratch", "accuracy", **cell),
               "student_gain": gap(final, "simclr" + STUDENT, "simclr", "accuracy", **cell)}
    name = cell_name(strongest, most)
    labels = {"simclr_gain": f"SimCLR init − scratch accuracy at {name}",
              "student_gain": f"SimCLR init's self-trained student − SimCLR init at {name}"}
    return finding(CLAIMS, "ZO-4", criterion, effects, labels, profile, figure)


# ZO-5's arms at its cell, on pre-trained init (the grid's `pretrained` run first): arm -> run settings. The
# joint self-training student's teacher is that cell's supervised pre-trained run.
ZO5_ARMS = {"pretrained+joint": dict(method="joint"), "pretrained+joint" + STUDENT: dict(method="joint_noisy_student")}
ZO5_STEPS = {"joint_gain": ("pretrained+joint", "pretrained"),
             "selftraining_gain": ("pretrained+joint" + STUDENT, "pretrained+joint")}


def zo5_finding(results: pd.DataFrame, criterion: dict, profile: str, figure: str | None = None) -> dict:
    """ZO-5: at the criterion's cell (aug, label_fraction), each step of pre-training -> + joint training (the
    upstream labelled task in the same run) -> + self-training, paired by seed."""
    final = final_metric(results, "accuracy", scored_split(results, "accuracy"))
    cell = dict(aug=criterion["aug"], label_fraction=criterion["label_fraction"])
    effects = {name: gap(final, a, b, "accuracy", **cell) for name, (a, b) in ZO5_STEPS.items()}
    where = cell_name(criterion["aug"], criterion["label_fraction"])
    labels = {"joint_gain": f"pre-trained + joint training − pre-trained accuracy at {where}",
              "selftraining_gain": f"+ self-training on top − pre-trained + joint at {where}"}
    return finding(CLAIMS, "ZO-5", criterion, effects, labels, profile, figure)
