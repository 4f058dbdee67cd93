"""He, Girshick & Dollár 2019, "Rethinking ImageNet Pre-training" (arXiv 1811.08883): HE-1 to HE-4 on the
study's detector. What each finding claims, the paper's numbers, the runs that test it and its criterion; the
criterion's values are pre-registered in config/protocol.yaml."""
from __future__ import annotations

import pandas as pd

from .effects import final_metric, gap, paired_effect, require_member, scored_split, seed_values
from .runs import iteration_matched_runs
from .verdicts import finding

# What each finding claims and what the paper reports.
CLAIMS = {
    "HE-1": dict(
        claim="From random init (with GN), training catches up with pre-trained fine-tuning given a longer "
              "schedule; pre-training mainly speeds up convergence.",
        paper="R50 box AP at 2x/3x/4x/5x/6x: scratch 36.8/39.5/40.6/40.7/41.3, pretrained 40.3/40.8/40.9/40.9/41.1 "
              "(He et al. 2019, Fig. 1 / Table 1).",
        paper_effect="pretrained − scratch at the longest schedule (6x): −0.2 AP (41.1 − 41.3); at 2x: +3.5"),
    "HE-2": dict(
        claim="At convergence pre-training gives no better regularization and no better localization: scratch ≥ "
              "pre-trained on the strict metric (AP75).",
        paper="R50 at 6x, box AP/AP50/AP75: scratch 41.3/61.8/45.6, pretrained 41.1/61.7/44.6 (He et al. 2019, Table 2).",
        paper_effect="scratch − pretrained AP75 at 6x: +1.0 (45.6 − 44.6)"),
    "HE-3": dict(
        claim="With less data scratch training still catches up, down to a breakdown regime where it overfits: "
              "its training loss catches up, its validation does not.",
        paper="box AP pretrained vs scratch, each at its best schedule: 35k images 36.3 vs 36.3, 10k 26.0 vs 25.9, "
              "3.5k 16.0 vs 9.3, 1k 9.9 vs 3.5 (He et al. 2019, Figs. 5-6).",
        paper_effect="pretrained − scratch at 3.5k images (3%): +6.7 AP; at 10k: +0.1"),
    "HE-4": dict(
        claim="Normalization decides whether training from scratch works: BatchNorm with small per-device batches "
              "trains poorly from scratch, GroupNorm (or SyncBN) works.",
        paper="Mask R-CNN from scratch needs GN or SyncBN (BN at 2 images/GPU fails); VGG without normalization: "
              "scratch 35.2 AP at 11x vs pretrained 35.6 at 9x (He et al. 2019, Sec. 4-5).",
        paper_effect="GN − small-batch BN from scratch: positive (BN at 2 images per GPU did not train well; no AP "
                     "given)"),
}


# The papers' numbers as tables, set next to ours in the reports (He et al. 2019, R50 Mask R-CNN, box AP).
PAPER_TABLES = {
    "HE-1": {"scratch": {2: 36.8, 3: 39.5, 4: 40.6, 5: 40.7, 6: 41.3},
             "pretrained": {2: 40.3, 3: 40.8, 4: 40.9, 5: 40.9, 6: 41.1}},
    "HE-2": {"scratch": (41.3, 61.8, 45.6), "pretrained": (41.1, 61.7, 44.6)},  # AP, AP50, AP75
    "HE-3": {"scratch": {"35k (30%)": 36.3, "10k (8.5%)": 25.9, "3.5k (3%)": 9.3, "1k (0.85%)": 3.5},
             "pretrained": {"35k (30%)": 36.3, "10k (8.5%)": 26.0, "3.5k (3%)": 16.0, "1k (0.85%)": 9.9}},
}


def schedule_gains(final: pd.DataFrame, by: str | None = None) -> list[dict]:
    """Whether each arm still gains from its longest-but-one schedule to its longest (per value of `by`, e.g. the
    data size): the paired difference over seeds with its 95% CI, shown beside the verdict, not judged."""
    out = []
    for key, rows in (final.groupby(by) if by else [(None, final)]):
        schedules = sorted(rows.schedule.unique())
        if len(schedules) < 2:
            continue
        before, longest = schedules[-2:]
        for arm in sorted(rows.arm.unique()):
            effect = paired_effect(seed_values(rows, arm, schedule=longest), seed_values(rows, arm, schedule=before))
            out.append(dict(arm=arm, **({by: key.item() if hasattr(key, "item") else key} if by else {}),
                            before=float(before), longest=float(longest), estimate=effect.estimate,
                            ci_low=effect.ci_low, ci_high=effect.ci_high, n=effect.n,
                            still_gains=bool(effect.ci_low > 0)))
    return out


def he1_finding(results: pd.DataFrame, metric: str, criterion: dict, profile: str, figure: str | None = None) -> dict:
    """HE-1: pre-trained minus scratch, at the shortest schedule (gap_shortest) and at the longest (gap_longest), on
    the held-out scenes (the validation scenes for results without them); beside it, whether each arm still gains
    from the longest-but-one schedule to the longest (on validation: a question of the curves)."""
    final = final_metric(results, metric, scored_split(results, metric))
    shortest, longest = final.schedule.min(), final.schedule.max()
    effects = {"gap_shortest": gap(final, "pretrained", "scratch", metric, schedule=shortest),
               "gap_longest": gap(final, "pretrained", "scratch", metric, schedule=longest)}
    labels = {"gap_shortest": f"pretrained − scratch {metric} at {shortest:g}x",
              "gap_longest": f"pretrained − scratch {metric} at {longest:g}x"}
    return finding(CLAIMS, "HE-1", criterion, effects, labels, profile, figure,
                   schedule_gains=schedule_gains(final_metric(results, metric)))


def held_out_split(results: pd.DataFrame, metric: str) -> str:
    """HE-2's split: 'test' where the longest schedule's runs scored `metric` on the held-out scenes, else 'val'."""
    return scored_split(results[results.schedule == results.schedule.max()], metric)


def he2_finding(results: pd.DataFrame, criterion: dict, profile: str, figure: str | None = None) -> dict:
    """HE-2: at the longest schedule scratch is no worse than pre-trained on the strict metric (AP75), scored on
    the held-out scenes where the runs have them (four times the validation set: less evaluation noise)."""
    longest = results.schedule.max()
    split = held_out_split(results, "AP75")
    effects = {"ap75_gap": gap(final_metric(results, "AP75", split), "scratch", "pretrained", "AP75",
                               schedule=longest)}
    scenes = "the held-out scenes" if split == "test" else "the validation scenes"
    labels = {"ap75_gap": f"scratch − pretrained AP75 at {longest:g}x on {scenes}"}
    return finding(CLAIMS, "HE-2", criterion, effects, labels, profile, figure)


def best_schedule(final: pd.DataFrame, by: str = "label_fraction") -> pd.DataFrame:
    """For each value of `by` and each arm, the rows of the schedule with the best mean over seeds
    (He et al. report each model at its best schedule; chosen on the validation set, for both arms alike)."""
    means = final.groupby([by, "arm", "schedule"]).value.mean().reset_index()
    best = means.loc[means.groupby([by, "arm"]).value.idxmax(), [by, "arm", "schedule"]]
    return final.merge(best, on=[by, "arm", "schedule"])


def he3_finding(results: pd.DataFrame, criterion: dict, profile: str, figure: str | None = None) -> dict:
    """HE-3: with each arm at its best schedule, scratch catches up at the criterion's `catchup_fraction` of the
    data (gap_catchup) but not at the smallest (gap_smallest); beside it, whether each arm still gains from its
    longest-but-one schedule to its longest, per data size. The best schedule is chosen on the validation scenes;
    the gaps are read on the held-out scenes where the runs scored them."""
    final = final_metric(results, "AP")
    best = best_schedule(final)
    if scored_split(results, "AP") == "test":
        chosen = best[["label_fraction", "arm", "schedule"]].drop_duplicates()
        best = final_metric(results, "AP", "test").merge(chosen, on=["label_fraction", "arm", "schedule"])
    fractions = sorted(float(f) for f in best.label_fraction.unique())
    catchup = criterion["catchup_fraction"]
    require_member("HE-3's catchup_fraction", catchup, fractions, "label_fractions")
    effects = {"gap_catchup": gap(best, "pretrained", "scratch", "AP", label_fraction=catchup),
               "gap_smallest": gap(best, "pretrained", "scratch", "AP", label_fraction=fractions[0])}
    labels = {"gap_catchup": f"pretrained − scratch AP at {catchup:.0%} of the data, each at its best schedule",
              "gap_smallest": f"pretrained − scratch AP at {fractions[0]:.0%} of the data, each at its best schedule"}
    return finding(CLAIMS, "HE-3", criterion, effects, labels, profile, figure,
                   schedule_gains=schedule_gains(final, by="label_fraction"))


def he4_finding(results: pd.DataFrame, criterion: dict, profile: str, figure: str | None = None) -> dict:
    """HE-4: from scratch, GN beats BatchNorm with a small per-device batch (on the held-out scenes where scored)."""
    final = final_metric(results, "AP", scored_split(results, "AP"))
    effects = {"gn_minus_bn": gap(final, "gn", "bn", "AP")}
    labels = {"gn_minus_bn": "from scratch, GN − small-batch BN AP"}
    return finding(CLAIMS, "HE-4", criterion, effects, labels, profile, figure, shown=norm_gaps(final))


def norm_gaps(final: pd.DataFrame) -> list[dict]:
    """HE-4's other normalizations against GN (no normalization, SyncBN, where they ran): each arm − GN AP, paired
    by seed with its 95% CI, shown beside the verdict, not judged."""
    out = []
    for arm in [a for a in ("none", "syncbn") if a in set(final.arm)]:
        effect = gap(final, arm, "gn", "AP")
        out.append(dict(label=f"from scratch, {arm} − GN AP", estimate=effect.estimate, ci_low=effect.ci_low,
                        ci_high=effect.ci_high, n=effect.n, unit=effect.unit))
    return out


def fixed_iteration_runs(world_dir: str, task: str, label_fractions: list[float], schedules: list[float],
                         seeds: list[int], inits: list[str], epochs_1x: float, batch_size: int) -> list[dict]:
    """HE-3's runs: every data size keeps the full set's 1x schedule in iterations, not epochs (He et al.
    train on 1k-35k images with COCO's iteration counts), so a smaller set is seen for more epochs."""
    return iteration_matched_runs(world_dir, task, label_fractions, epochs_1x, batch_size, init=inits,
                                  schedule=schedules, seed=seeds)


NORM_ARMS = {  # HE-4's arms: name -> model settings; bn_batch is filled in from the notebook's parameter
    "gn": dict(norm="gn"),
    "bn": dict(norm="bn"),          # statistics over `bn_batch` images, as per GPU without SyncBN
    "syncbn": dict(norm="bn", bn_batch=0),  # statistics over the whole batch, as SyncBN
    "none": dict(norm="none"),
}


def norm_runs(norms: list[str], seeds: list[int], bn_batch: int) -> list[dict]:
    """HE-4's runs: one arm per normalisation of NORM_ARMS, every seed, from scratch."""
    unknown = [n for n in norms if n not in NORM_ARMS]
    if unknown:
        raise ValueError(f"norms {unknown} unknown; allowed: {', '.join(NORM_ARMS)}")
    arms = {name: {**NORM_ARMS[name]} for name in norms}
    for settings in arms.values():
        if settings["norm"] == "bn":
            settings.setdefault("bn_batch", bn_batch)
    return [dict(arm=name, **arms[name], seed=seed) for name in norms for seed in seeds]


def norm_exploration_text(explored: pd.DataFrame) -> str:
    """What the exploration saw without normalization, in words from its final AP (`explored`, final_metric of its
    results: seeds 0-4, scored on validation), beside He et al.'s VGG-16 without normalization."""
    none, bn = gap(explored, "none", "gn", "AP"), gap(explored, "bn", "gn", "AP")
    how = ("better than with GroupNorm" if none.ci_low > 0 else "worse than with GroupNorm" if none.ci_high < 0
           else "as well as with GroupNorm (the interval of their difference holds 0)")
    seeds = sorted(explored.seed.unique())
    return (f"**What the exploration saw** (seeds {', '.join(map(str, seeds))}, scored on the validation scenes): "
            f"the network without normalization trained from scratch {how}: none − GN "
            f"{none.estimate:+.2f} [{none.ci_low:+.2f}, {none.ci_high:+.2f}] AP over {none.n} seeds, while "
            f"small-batch BN − GN was {bn.estimate:+.2f} [{bn.ci_low:+.2f}, {bn.ci_high:+.2f}]. That is no "
            f"contradiction of the paper: He et al. also trained a detector without normalization from scratch "
            f"(VGG-16: 35.2 AP at 11x against 35.6 pre-trained at 9x), with more care and a longer schedule. HE-4's "
            f"claim is about small-batch BN; the confirmation's none − GN is under *Verdicts*, shown, not judged.")
